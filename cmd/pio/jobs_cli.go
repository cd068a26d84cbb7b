package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pioreactor/pio/api/client"
	"github.com/spf13/cobra"
)

// experimentOf finds the experiment to run in: --experiment, else the single
// experiment the units are assigned to.
func experimentOf(ctx context.Context, c *client.Client, exp string, units []string) (string, error) {
	if exp != "" {
		return exp, nil
	}
	var asg []struct {
		Unit       string  `json:"pioreactor_unit"`
		Experiment *string `json:"experiment"`
	}
	if err := c.Do(ctx, http.MethodGet, "/api/workers/assignments", nil, &asg); err != nil {
		return "", err
	}
	found := map[string]bool{}
	for _, a := range asg {
		if a.Experiment != nil && (len(units) == 0 || contains(units, a.Unit)) {
			found[*a.Experiment] = true
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("cannot tell which experiment (%d candidates); give --experiment", len(found))
	}
	for e := range found {
		return e, nil
	}
	return "", nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// parseSettings turns ["--target-rpm", "400", ...] into {"target_rpm": 400}.
func parseSettings(args []string) (map[string]any, error) {
	out := map[string]any{}
	for i := 0; i < len(args); i++ {
		k := args[i]
		if !strings.HasPrefix(k, "--") || i+1 >= len(args) {
			return nil, fmt.Errorf("settings are --NAME VALUE pairs, not %q", k)
		}
		name := strings.ReplaceAll(strings.TrimPrefix(k, "--"), "-", "_")
		v := args[i+1]
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[name] = f
		} else {
			out[name] = v
		}
		i++
	}
	return out, nil
}

// unitsOrBroadcast is the unit path segments for --units (all: $broadcast).
func unitsOrBroadcast(units []string) []string {
	if len(units) == 0 {
		return []string{"$broadcast"}
	}
	return units
}

func newRunCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "run JOB [--units U ...] [--experiment E] [--node URL] [--api-token T] [--SETTING VALUE ...]",
		Short: "Start an activity on units (default: every active unit of the experiment)",
		Long: `Start an activity, e.g. pio run stirring --target-rpm 400 --units worker2.
Settings are the job's (DESIGN §5), with - or _; --units may repeat or hold a comma list.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				return fmt.Errorf("usage: pio run JOB [--units U ...] [--experiment E] [--SETTING VALUE ...]")
			}
			job, rest := args[0], args[1:]
			f := &apiFlags{node: envOr("PIO_NODE", "http://localhost:8080"), dataDir: envOr("PIO_DATA_DIR", defaultDataDir)}
			var units, settingArgs []string
			var exp string
			for i := 0; i < len(rest); i++ {
				if i+1 >= len(rest) {
					return fmt.Errorf("%s needs a value", rest[i])
				}
				switch rest[i] {
				case "--units", "--unit":
					units = append(units, strings.Split(rest[i+1], ",")...)
				case "--experiment":
					exp = rest[i+1]
				case "--node":
					f.node = rest[i+1]
				case "--api-token":
					f.token = rest[i+1]
				case "--data-dir":
					f.dataDir = rest[i+1]
				default:
					settingArgs = append(settingArgs, rest[i], rest[i+1])
				}
				i++
			}
			settings, err := parseSettings(settingArgs)
			if err != nil {
				return err
			}
			c, err := f.client(2 * time.Minute)
			if err != nil {
				return err
			}
			ctx := context.Background()
			exp, err = experimentOf(ctx, c, exp, units)
			if err != nil {
				return err
			}
			for _, u := range unitsOrBroadcast(units) {
				var acc map[string]any
				path := fmt.Sprintf("/api/workers/%s/jobs/run/job_name/%s/experiments/%s", url.PathEscape(u), url.PathEscape(job), url.PathEscape(exp))
				if err := c.Do(ctx, http.MethodPost, path, map[string]any{"options": settings}, &acc); err != nil {
					return err
				}
				if err := waitForTask(ctx, c, cmd.OutOrStdout(), acc); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s started on %s in %s.\n", job, strings.Join(unitsOrBroadcast(units), ", "), exp)
			return nil
		},
	}
}

func newKillCmd() *cobra.Command {
	var units []string
	var exp string
	var all bool
	cmd := apiCmd("kill [JOB] [--all-jobs]", "Stop an activity (or every activity) on units", cobra.MaximumNArgs(1),
		func(cmd *cobra.Command, c *client.Client, a []string) error {
			if (len(a) == 0) == !all {
				return fmt.Errorf("give a JOB or --all-jobs")
			}
			exp, err := experimentOf(cmd.Context(), c, exp, units)
			if err != nil {
				return err
			}
			for _, u := range unitsOrBroadcast(units) {
				path := fmt.Sprintf("/api/workers/%s/jobs/stop/experiments/%s", url.PathEscape(u), url.PathEscape(exp))
				if !all {
					path = fmt.Sprintf("/api/workers/%s/jobs/stop/job_name/%s/experiments/%s", url.PathEscape(u), url.PathEscape(a[0]), url.PathEscape(exp))
				}
				var acc map[string]any
				if err := c.Do(cmd.Context(), http.MethodPost, path, struct{}{}, &acc); err != nil {
					return err
				}
				if err := waitForTask(cmd.Context(), c, cmd.OutOrStdout(), acc); err != nil {
					return err
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Stopped.")
			return nil
		})
	cmd.Flags().StringSliceVar(&units, "units", nil, "units (default: all of the experiment)")
	cmd.Flags().StringVar(&exp, "experiment", "", "experiment (default: the one the units are in)")
	cmd.Flags().BoolVar(&all, "all-jobs", false, "stop every activity")
	return cmd
}

func newJobsCmd() *cobra.Command {
	root := &cobra.Command{Use: "jobs", Short: "Running activities and their settings"}
	var asJSON bool
	list := apiCmd("list", "List running jobs on every worker", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, _ []string) error {
		var all map[string][]map[string]any // a dead worker's jobs come back in state "lost"
		if err := c.Do(cmd.Context(), http.MethodGet, "/api/workers/$broadcast/jobs/running", nil, &all); err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), all)
		}
		units := make([]string, 0, len(all))
		for u := range all {
			units = append(units, u)
		}
		sort.Strings(units)
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "UNIT\tJOB\tEXPERIMENT\tSTATE\tSETTINGS")
		for _, u := range units {
			for _, m := range all[u] {
				fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t%s\n", u, m["job_name"], m["experiment"], m["state"], formatSettings(m["settings"]))
			}
		}
		return tw.Flush()
	})
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var units []string
	var exp string
	set := apiCmd("set JOB SETTING VALUE", "Change a running job's setting", cobra.ExactArgs(3), func(cmd *cobra.Command, c *client.Client, a []string) error {
		settings, err := parseSettings([]string{"--" + a[1], a[2]})
		if err != nil {
			return err
		}
		exp, err := experimentOf(cmd.Context(), c, exp, units)
		if err != nil {
			return err
		}
		for _, u := range unitsOrBroadcast(units) {
			var acc map[string]any
			path := fmt.Sprintf("/api/workers/%s/jobs/update/job_name/%s/experiments/%s", url.PathEscape(u), url.PathEscape(a[0]), url.PathEscape(exp))
			if err := c.Do(cmd.Context(), http.MethodPatch, path, map[string]any{"settings": settings}, &acc); err != nil {
				return err
			}
			if err := waitForTask(cmd.Context(), c, cmd.OutOrStdout(), acc); err != nil {
				return err
			}
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s = %s.\n", a[0], a[1], a[2])
		return nil
	})
	set.Flags().StringSliceVar(&units, "units", nil, "units (default: all of the experiment)")
	set.Flags().StringVar(&exp, "experiment", "", "experiment (default: the one the units are in)")
	root.AddCommand(list, set)
	return root
}

// formatSettings prints job settings as sorted name=value pairs.
func formatSettings(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprint(v)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if f, ok := m[k].(float64); ok {
			parts = append(parts, fmt.Sprintf("%s=%s", k, strconv.FormatFloat(f, 'g', 6, 64)))
		} else {
			parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
		}
	}
	return strings.Join(parts, " ")
}

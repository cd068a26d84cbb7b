package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/pioreactor/pio/api/client"
	"github.com/spf13/cobra"
)

// apiCmd builds a command that talks to a node: it gets --node, and run gets a client.
func apiCmd(use, short string, args cobra.PositionalArgs, run func(cmd *cobra.Command, c *client.Client, args []string) error) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: args}
	f := addAPIFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		c, err := f.client(2 * time.Minute)
		if err != nil {
			return err
		}
		return run(cmd, c, a)
	}
	return cmd
}

// printJSON writes v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// waitForTask polls a 202 task answer and reports its outcome.
func waitForTask(ctx context.Context, c *client.Client, out io.Writer, accepted map[string]any) error {
	path, _ := accepted["result_url_path"].(string)
	if path == "" {
		return nil
	}
	stop := progress(out)
	defer stop()
	for {
		var res client.Error
		var body map[string]any
		code, err := c.DoStatus(ctx, http.MethodGet, path, nil, &body)
		if err != nil {
			return err
		}
		if code == http.StatusOK {
			if body["status"] == "failed" {
				b, _ := json.Marshal(body)
				_ = json.Unmarshal(b, &res)
				return &res
			}
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func newWorkersCmd() *cobra.Command {
	root := &cobra.Command{Use: "workers", Short: "The inventory: list, add, remove, activate, identify, reboot, assign"}
	var asJSON bool
	list := apiCmd("list", "List the workers", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, _ []string) error {
		var ws []map[string]any
		if err := c.Do(cmd.Context(), http.MethodGet, "/api/workers", nil, &ws); err != nil {
			return err
		}
		var asg []map[string]any
		if err := c.Do(cmd.Context(), http.MethodGet, "/api/workers/assignments", nil, &asg); err != nil {
			return err
		}
		exp := map[any]any{}
		for _, a := range asg {
			exp[a["pioreactor_unit"]] = a["experiment"]
		}
		if asJSON {
			for _, w := range ws {
				w["experiment"] = exp[w["pioreactor_unit"]]
			}
			return printJSON(cmd.OutOrStdout(), ws)
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "UNIT\tHEALTH\tACTIVE\tEXPERIMENT\tMODEL\tADDRESS\tADDED")
		for _, w := range ws {
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\n", w["pioreactor_unit"], w["health"], w["is_active"], dash(exp[w["pioreactor_unit"]]),
				dash(w["model_name"]), w["ipv4_address"], w["added_at"])
		}
		return tw.Flush()
	})
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	var address, model, modelVersion string
	add := apiCmd("add NAME", "Add the standalone node NAME to the cluster as a worker", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "Adding %s (this waits until it is in the cluster) ", a[0])
		stop := progress(out)
		body := map[string]any{"pioreactor_unit": a[0]}
		if address != "" {
			body["address"] = address
		}
		if model != "" {
			body["model_name"] = model
		}
		if modelVersion != "" {
			body["model_version"] = modelVersion
		}
		var w map[string]any
		err := c.Do(cmd.Context(), http.MethodPut, "/api/workers", body, &w)
		stop()
		if err != nil {
			fmt.Fprintln(out)
			return err
		}
		fmt.Fprintf(out, "\n%s is in the cluster: %v, active %v.\n", a[0], w["health"], w["is_active"])
		return nil
	})
	add.Flags().StringVar(&address, "address", "", "HOST[:PORT] of its HTTP API, if NAME and NAME.local do not resolve")
	add.Flags().StringVar(&model, "model-name", "", "Pioreactor model")
	add.Flags().StringVar(&modelVersion, "model-version", "", "Pioreactor model version")

	remove := apiCmd("remove NAME", "Remove NAME from the cluster; it goes back to standalone", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.Do(cmd.Context(), http.MethodDelete, "/api/workers/"+url.PathEscape(a[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s removed.\n", a[0])
		return nil
	})
	active := apiCmd("update-active NAME 0|1", "Make NAME inactive (0: its activities stop) or active (1)", cobra.ExactArgs(2), func(cmd *cobra.Command, c *client.Client, a []string) error {
		v, err := strconv.Atoi(a[1])
		if err != nil || (v != 0 && v != 1) {
			return fmt.Errorf("the second argument must be 0 or 1, not %q", a[1])
		}
		if err := c.Do(cmd.Context(), http.MethodPut, "/api/workers/"+url.PathEscape(a[0])+"/is_active", map[string]int{"is_active": v}, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s is_active=%d.\n", a[0], v)
		return nil
	})
	task := func(use, short, path string, done string) *cobra.Command {
		return apiCmd(use, short, cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
			var acc map[string]any
			if err := c.Do(cmd.Context(), http.MethodPost, fmt.Sprintf(path, url.PathEscape(a[0])), nil, &acc); err != nil {
				return err
			}
			if err := waitForTask(cmd.Context(), c, cmd.OutOrStdout(), acc); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s.\n", a[0], done)
			return nil
		})
	}
	assign := apiCmd("assign NAME EXPERIMENT", "Put NAME in EXPERIMENT (out of any other)", cobra.ExactArgs(2), func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.Do(cmd.Context(), http.MethodPut, "/api/experiments/"+url.PathEscape(a[1])+"/workers", map[string]string{"pioreactor_unit": a[0]}, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s assigned to %s.\n", a[0], a[1])
		return nil
	})
	unassign := apiCmd("unassign NAME EXPERIMENT", "Take NAME out of EXPERIMENT", cobra.ExactArgs(2), func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.Do(cmd.Context(), http.MethodDelete, "/api/experiments/"+url.PathEscape(a[1])+"/workers/"+url.PathEscape(a[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s unassigned from %s.\n", a[0], a[1])
		return nil
	})
	root.AddCommand(list, add, remove, active,
		task("identify NAME", "Blink NAME's LED", "/api/workers/%s/blink", "blinked"),
		task("reboot NAME", "Reboot NAME", "/api/units/%s/system/reboot", "is rebooting"),
		assign, unassign)
	return root
}

func newExperimentsCmd() *cobra.Command {
	root := &cobra.Command{Use: "experiments", Short: "Experiments: list, create, delete"}
	var asJSON bool
	list := apiCmd("list", "List experiments, newest first", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, _ []string) error {
		var es []map[string]any
		if err := c.Do(cmd.Context(), http.MethodGet, "/api/experiments", nil, &es); err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), es)
		}
		var counts []map[string]any
		_ = c.Do(cmd.Context(), http.MethodGet, "/api/experiments/assignment_count", nil, &counts)
		n := map[any]any{}
		for _, r := range counts {
			n[r["experiment"]] = r["worker_count"]
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EXPERIMENT\tWORKERS\tCREATED\tDESCRIPTION")
		for _, e := range es {
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\n", e["experiment"], dash(n[e["experiment"]]), e["created_at"], e["description"])
		}
		return tw.Flush()
	})
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var desc string
	create := apiCmd("create NAME", "Create an experiment", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.Do(cmd.Context(), http.MethodPost, "/api/experiments", map[string]string{"experiment": a[0], "description": desc}, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Experiment %s created.\n", a[0])
		return nil
	})
	create.Flags().StringVar(&desc, "description", "", "what the experiment is about")
	del := apiCmd("delete NAME", "Delete an experiment; its assignments end", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.Do(cmd.Context(), http.MethodDelete, "/api/experiments/"+url.PathEscape(a[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Experiment %s deleted.\n", a[0])
		return nil
	})
	root.AddCommand(list, create, del)
	return root
}

func dash(v any) any {
	if v == nil || v == "" {
		return "-"
	}
	return v
}

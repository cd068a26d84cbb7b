package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
	"github.com/spf13/cobra"
)

// `pio profiles …`: experiment profiles through the node's
// /api/experiment_profiles routes and an experiment's runs.

// profileStep is a step of a dry run or of a run, as the API answers it.
type profileStep struct {
	Key     string         `json:"key"`
	Unit    string         `json:"pioreactor_unit"`
	Job     string         `json:"job_name"`
	Kind    string         `json:"kind"`
	At      float64        `json:"at_seconds"`
	Options map[string]any `json:"options"`
	If      string         `json:"if"`
	Message string         `json:"message"`
	State   string         `json:"state"`
	DoneAt  *float64       `json:"done_at_seconds"`
}

// profileRun is a run of …/experiment_profiles/recent.
type profileRun struct {
	RunID      string        `json:"run_id"`
	Experiment string        `json:"experiment"`
	Name       string        `json:"experiment_profile_name"`
	Filename   string        `json:"profile_filename"`
	State      string        `json:"state"`
	StartedAt  time.Time     `json:"started_at"`
	EndedAt    *time.Time    `json:"ended_at"`
	Actions    []profileStep `json:"actions"`
}

// errInvalidProfile is returned once a profile's errors have been printed.
type errInvalidProfile struct {
	file string
	n    int
}

func (e *errInvalidProfile) Error() string {
	return fmt.Sprintf("%s is not a valid profile (%d error(s) above); fix them and run pio profiles validate %s again", e.file, e.n, e.file)
}

func newProfilesCmd() *cobra.Command {
	root := &cobra.Command{Use: "profiles", Short: "Experiment profiles: list, upload, show, delete, validate, dry-run, run, stop, runs"}
	root.AddCommand(newProfilesListCmd(), newProfilesUploadCmd(), newProfilesShowCmd(), newProfilesDeleteCmd(),
		newProfilesValidateCmd(), newProfilesDryRunCmd(), newProfilesRunCmd(), newProfilesStopCmd(), newProfilesRunsCmd())
	return root
}

func newProfilesListCmd() *cobra.Command {
	var asJSON bool
	cmd := apiCmd("list", "List the stored profiles, newest first", cobra.NoArgs, func(cmd *cobra.Command, c *client.Client, _ []string) error {
		var list []struct {
			File    string `json:"file"`
			Profile struct {
				Name     string `json:"experiment_profile_name"`
				Metadata struct {
					Author      string `json:"author"`
					Description string `json:"description"`
				} `json:"metadata"`
			} `json:"experimentProfile"`
		}
		if asJSON {
			var raw any
			if err := c.Do(cmd.Context(), http.MethodGet, "/api/experiment_profiles", nil, &raw); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), raw)
		}
		if err := c.Do(cmd.Context(), http.MethodGet, "/api/experiment_profiles", nil, &list); err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintln(cmd.OutOrStdout(), "No profiles yet: upload one with pio profiles upload FILE.")
			return nil
		}
		tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE\tNAME\tAUTHOR\tDESCRIPTION")
		for _, p := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.File, orDash(p.Profile.Name), orDash(p.Profile.Metadata.Author), orDash(cut(p.Profile.Metadata.Description, 60)))
		}
		return tw.Flush()
	})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// cut shortens s to n characters on one line.
func cut(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// readProfileFile reads a profile from disk, refusing what the API would refuse for its size.
func readProfileFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("cannot read the profile: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, fsm.MaxProfileBytes+1))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", name, err)
	}
	if len(b) > fsm.MaxProfileBytes {
		return "", fmt.Errorf("%s is larger than %d KiB, the most a profile may be: split it", name, fsm.MaxProfileBytes>>10)
	}
	return string(b), nil
}

// docError is one error of a profile, where it is (0 when not known).
type docError struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// profileAnswerError is an error answer about a profile, with its errors.
type profileAnswerError struct {
	api    *client.Error
	Errors []docError
}

func (e *profileAnswerError) Error() string { return e.api.Error() }
func (e *profileAnswerError) Unwrap() error { return e.api }

// send sends a request to the node and decodes a 2xx answer into out (if
// not nil) and any other into *client.Error, or *profileAnswerError when it
// lists a profile's errors. A text answer is returned as it is.
func send(ctx context.Context, c *client.Client, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, &client.Error{Message: "cannot reach " + c.Base, Cause: err.Error(),
			Remediation: "check that pio serve runs there (pio status) and that --node is its address"}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			client.Error
			Errors []docError `json:"errors"`
		}
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Error = client.Error{Message: strings.TrimSpace(string(data))}
		}
		e.Status = resp.StatusCode
		ae := e.Error
		if len(e.Errors) > 0 {
			return nil, &profileAnswerError{api: &ae, Errors: e.Errors}
		}
		return nil, &ae
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decode the answer of %s %s: %w", method, path, err)
		}
	}
	return data, nil
}

// profileErrs prints the errors of an answer about file as FILE:LINE:COLUMN: message
// and returns errInvalidProfile; other errors are returned as they are.
func profileErrs(w io.Writer, file string, err error) error {
	var pe *profileAnswerError
	if !errors.As(err, &pe) {
		return err
	}
	for _, e := range pe.Errors {
		switch {
		case e.Line > 0 && e.Column > 0:
			fmt.Fprintf(w, "%s:%d:%d: %s\n", file, e.Line, e.Column, e.Message)
		case e.Line > 0:
			fmt.Fprintf(w, "%s:%d: %s\n", file, e.Line, e.Message)
		default:
			fmt.Fprintf(w, "%s: %s\n", file, e.Message)
		}
	}
	return &errInvalidProfile{file: file, n: len(pe.Errors)}
}

// profilePath is the API path of a stored profile.
func profilePath(filename string) string {
	return "/api/experiment_profiles/" + url.PathEscape(filename)
}

// isNotFound says whether err is the API's 404.
func isNotFound(err error) bool {
	var ae *client.Error
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

func newProfilesUploadCmd() *cobra.Command {
	var name string
	cmd := apiCmd("upload FILE [--name FILENAME]", "Upload a profile, or replace the stored one of that filename (edit)", cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *client.Client, a []string) error {
			text, err := readProfileFile(a[0])
			if err != nil {
				return err
			}
			if name == "" {
				name = filepath.Base(a[0])
			}
			if why := fsm.ValidProfileFilename(name); why != "" {
				return fmt.Errorf("%q is not a profile filename: %s (give --name my_profile.yaml)", name, why)
			}
			ctx := cmd.Context()
			_, err = send(ctx, c, http.MethodGet, profilePath(name), nil, nil)
			if err != nil && !isNotFound(err) {
				return err
			}
			verb := "Uploaded"
			if err != nil {
				_, err = send(ctx, c, http.MethodPost, "/api/experiment_profiles", map[string]string{"filename": name, "body": text}, nil)
			} else {
				verb = "Replaced"
				_, err = send(ctx, c, http.MethodPatch, profilePath(name), map[string]string{"body": text}, nil)
			}
			if err != nil {
				return profileErrs(cmd.ErrOrStderr(), a[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s as %s.\n", verb, a[0], name)
			return nil
		})
	cmd.Flags().StringVar(&name, "name", "", "the filename to store it as (default: FILE's name)")
	return cmd
}

func newProfilesShowCmd() *cobra.Command {
	return apiCmd("show FILENAME", "Print a stored profile", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
		text, err := send(cmd.Context(), c, http.MethodGet, profilePath(a[0]), nil, nil)
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(text)
		return err
	})
}

func newProfilesDeleteCmd() *cobra.Command {
	return apiCmd("delete FILENAME", "Delete a stored profile (its runs keep their copy)", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
		if err := c.Do(cmd.Context(), http.MethodDelete, profilePath(a[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s.\n", a[0])
		return nil
	})
}

func newProfilesValidateCmd() *cobra.Command {
	return apiCmd("validate FILE", "Check a profile file: each error as FILE:LINE:COLUMN: message", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
		text, err := readProfileFile(a[0])
		if err != nil {
			return err
		}
		if _, err := send(cmd.Context(), c, http.MethodPost, "/api/experiment_profiles/validate", map[string]string{"body": text}, nil); err != nil {
			return profileErrs(cmd.ErrOrStderr(), a[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s is a valid profile.\n", a[0])
		return nil
	})
}

// formatOffset prints seconds from a run's start as 0s, 90s, 5m, 1h30m, 2d.
func formatOffset(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	out := d.String()
	out = strings.TrimSuffix(out, "0s")
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	if out == "" {
		return "0s"
	}
	return out
}

// stepWhat describes a step's options, condition and message.
func stepWhat(st profileStep) string {
	var parts []string
	if len(st.Options) > 0 {
		parts = append(parts, formatSettings(st.Options))
	}
	if st.If != "" {
		parts = append(parts, "if "+st.If)
	}
	if st.Message != "" {
		parts = append(parts, st.Message)
	}
	return orDash(cut(strings.Join(parts, "; "), 80))
}

func newProfilesDryRunCmd() *cobra.Command {
	var asJSON bool
	cmd := apiCmd("dry-run FILE|FILENAME", "Print the steps a run would do, with their times (a local file, else a stored profile)", cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *client.Client, a []string) error {
			body := map[string]string{"filename": a[0]}
			local := false
			if st, err := os.Stat(a[0]); err == nil && st.Mode().IsRegular() {
				text, err := readProfileFile(a[0])
				if err != nil {
					return err
				}
				body, local = map[string]string{"body": text}, true
			}
			var plan struct {
				Name  string        `json:"experiment_profile_name"`
				Steps []profileStep `json:"steps"`
				More  bool          `json:"more"`
			}
			if _, err := send(cmd.Context(), c, http.MethodPost, "/api/experiment_profiles/dry_run", body, &plan); err != nil {
				if local {
					return profileErrs(cmd.ErrOrStderr(), a[0], err)
				}
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, plan)
			}
			fmt.Fprintf(out, "Profile %q: %d step(s), conditions as they are now.\n", plan.Name, len(plan.Steps))
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tUNIT\tJOB\tACTION\tDETAILS")
			for _, st := range plan.Steps {
				unit := st.Unit
				if unit == "" {
					unit = "(all)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", formatOffset(st.At), unit, orDash(st.Job), st.Kind, stepWhat(st))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if plan.More {
				fmt.Fprintln(out, "… and more steps (repeats) after these.")
			}
			return nil
		})
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// runsPath is the API path of an experiment's runs.
func runsPath(exp string) string {
	return "/api/experiments/" + url.PathEscape(exp) + "/experiment_profiles"
}

func newProfilesRunCmd() *cobra.Command {
	var exp string
	cmd := apiCmd("run FILENAME --experiment EXP", "Run a stored profile on an experiment", cobra.ExactArgs(1), func(cmd *cobra.Command, c *client.Client, a []string) error {
		exp, err := experimentOf(cmd.Context(), c, exp, nil)
		if err != nil {
			return err
		}
		var run profileRun
		if err := c.Do(cmd.Context(), http.MethodPost, runsPath(exp)+"/runs", map[string]string{"filename": a[0]}, &run); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Started %s (%s) on %s: run %s.\nFollow it with: pio profiles runs --experiment %s\n", run.Filename, run.Name, run.Experiment, run.RunID, run.Experiment)
		return nil
	})
	cmd.Flags().StringVar(&exp, "experiment", "", "the experiment to run it on (default: the only one with workers)")
	return cmd
}

func newProfilesStopCmd() *cobra.Command {
	var exp string
	cmd := apiCmd("stop --experiment EXP [RUN]", "Stop a run (default: the one running on the experiment) and the jobs it started", cobra.MaximumNArgs(1),
		func(cmd *cobra.Command, c *client.Client, a []string) error {
			ctx := cmd.Context()
			exp, err := experimentOf(ctx, c, exp, nil)
			if err != nil {
				return err
			}
			var ids []string
			if len(a) == 1 {
				ids = a
			} else {
				var running []profileRun
				if err := c.Do(ctx, http.MethodGet, runsPath(exp)+"/running", nil, &running); err != nil {
					return err
				}
				for _, r := range running {
					ids = append(ids, r.RunID)
				}
				if len(ids) == 0 {
					return fmt.Errorf("no profile runs on %s: nothing to stop (see pio profiles runs --experiment %s)", exp, exp)
				}
			}
			out := cmd.OutOrStdout()
			for _, id := range ids {
				var res struct {
					Stopped []string `json:"stopped"`
					Failed  []string `json:"failed"`
				}
				fmt.Fprintf(out, "Stopping run %s on %s ...\n", id, exp)
				stop := progress(out)
				err := c.Do(ctx, http.MethodPost, runsPath(exp)+"/runs/"+url.PathEscape(id)+"/stop", struct{}{}, &res)
				stop()
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "Stopped run %s.", id)
				if len(res.Stopped) > 0 {
					fmt.Fprintf(out, " Jobs stopped: %s.", strings.Join(res.Stopped, ", "))
				}
				fmt.Fprintln(out)
				if len(res.Failed) > 0 {
					return fmt.Errorf("run %s stopped, but these jobs it started could not be stopped: %s (stop them with pio kill)", id, strings.Join(res.Failed, "; "))
				}
			}
			return nil
		})
	cmd.Flags().StringVar(&exp, "experiment", "", "the experiment (default: the only one with workers)")
	return cmd
}

func newProfilesRunsCmd() *cobra.Command {
	var exp string
	var asJSON bool
	cmd := apiCmd("runs --experiment EXP", "Show the running and recent runs of an experiment, each step with its state", cobra.NoArgs,
		func(cmd *cobra.Command, c *client.Client, _ []string) error {
			exp, err := experimentOf(cmd.Context(), c, exp, nil)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				var raw any
				if err := c.Do(cmd.Context(), http.MethodGet, runsPath(exp)+"/recent", nil, &raw); err != nil {
					return err
				}
				return printJSON(out, raw)
			}
			var runs []profileRun
			if err := c.Do(cmd.Context(), http.MethodGet, runsPath(exp)+"/recent", nil, &runs); err != nil {
				return err
			}
			if len(runs) == 0 {
				fmt.Fprintf(out, "No profile runs on %s yet.\n", exp)
				return nil
			}
			for i, r := range runs {
				if i > 0 {
					fmt.Fprintln(out)
				}
				printRun(out, r)
			}
			return nil
		})
	cmd.Flags().StringVar(&exp, "experiment", "", "the experiment (default: the only one with workers)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printRun prints a run and its steps: when each is due, its state, and what is next.
func printRun(out io.Writer, r profileRun) {
	ended := ""
	if r.EndedAt != nil {
		ended = ", ended " + r.EndedAt.Local().Format(time.DateTime)
	}
	fmt.Fprintf(out, "Run %s: %s (%s), %s, started %s%s\n", r.RunID, r.Filename, r.Name, strings.ToUpper(r.State), r.StartedAt.Local().Format(time.DateTime), ended)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  AT\tSTATE\tDONE AT\tUNIT\tJOB\tACTION\tDETAILS")
	next := ""
	for _, st := range r.Actions {
		done := "-"
		if st.DoneAt != nil {
			done = formatOffset(*st.DoneAt)
		}
		unit := st.Unit
		if unit == "" {
			unit = "(all)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", formatOffset(st.At), st.State, done, unit, orDash(st.Job), st.Kind, stepWhat(st))
		if next == "" && r.State == fsm.RunRunning && (st.State == "planned" || st.State == "due" || st.State == fsm.StepClaimed) {
			next = fmt.Sprintf("%s %s at %s (%s)", st.Kind, orDash(st.Job), formatOffset(st.At), r.StartedAt.Add(time.Duration(st.At*float64(time.Second))).Local().Format(time.DateTime))
		}
	}
	tw.Flush()
	if next != "" {
		fmt.Fprintf(out, "  Next: %s\n", next)
	} else if r.State == fsm.RunRunning {
		fmt.Fprintln(out, "  Next: nothing planned yet (a repeat or a condition may add steps)")
	}
}

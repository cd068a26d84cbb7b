package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/trust"
	"github.com/spf13/cobra"
)

// defaultDataDir is where `pio serve` keeps its data when nothing says otherwise.
const defaultDataDir = "/var/lib/pio"

// apiFlags are the flags of a command that talks to a node's API: which node,
// and the API token that writes need (--api-token, PIO_API_TOKEN, or the
// secrets in a member's data dir).
type apiFlags struct {
	node, token, dataDir string
}

// addAPIFlags declares --node, --api-token and --data-dir on cmd.
func addAPIFlags(cmd *cobra.Command) *apiFlags {
	f := &apiFlags{}
	cmd.Flags().StringVar(&f.node, "node", envOr("PIO_NODE", "http://localhost:8080"), "HTTP address of the node to talk to (env PIO_NODE)")
	cmd.Flags().StringVar(&f.token, "api-token", "", "the cluster's API token, which writes need (env PIO_API_TOKEN; default: read from --data-dir)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", envOr("PIO_DATA_DIR", defaultDataDir), "a member's data dir, to read the API token from when none is given (env PIO_DATA_DIR)")
	return f
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// client returns a client of the node, sending the API token when one is found.
func (f *apiFlags) client(timeout time.Duration) (*client.Client, error) {
	c, err := client.New(f.node, timeout)
	if err != nil {
		return nil, err
	}
	if t := apiToken(f.token, f.dataDir); t != "" {
		c.Header = http.Header{"Authorization": {"Bearer " + t}}
	}
	return c, nil
}

// apiToken is the API token to send: the flag's, PIO_API_TOKEN, or the one
// in dataDir's secrets (readable by pio's user and root only); "" if none.
func apiToken(flag, dataDir string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv("PIO_API_TOKEN"); v != "" {
		return v
	}
	if b, err := trust.Load(dataDir); err == nil {
		return b.APIToken
	}
	return ""
}

func newTokenCmd() *cobra.Command {
	var api bool
	var dataDir string
	cmd := &cobra.Command{
		Use:   "token [--api] [--data-dir DIR]",
		Short: "Print the cluster's join token (--api: its API token), read from a member's data dir",
		Long: `Print the join token of this node's cluster: one string that pins the cluster's CA
and carries its join secret. Give it to a new node: pio join HOST --token TOKEN.
With --api, print the API token that writes to the HTTP API need (Authorization:
Bearer TOKEN; the UI asks for it once). The secrets are readable by pio's user
only: on a Pioreactor, run sudo pio token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := trust.Load(dataDir)
			switch {
			case errors.Is(err, os.ErrPermission):
				return fmt.Errorf("cannot read the secrets in %s: %w; they are private to pio's user: run `sudo pio token`", dataDir, err)
			case errors.Is(err, trust.ErrNoSecrets):
				return fmt.Errorf("%w; is %s the data dir of a running node (--data-dir)? A node made by an older pio has none until `pio security enable`", err, dataDir)
			case err != nil:
				return err
			}
			if api {
				fmt.Fprintln(cmd.OutOrStdout(), b.APIToken)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), b.JoinToken())
			return nil
		},
	}
	cmd.Flags().BoolVar(&api, "api", false, "print the API token instead of the join token")
	cmd.Flags().StringVar(&dataDir, "data-dir", envOr("PIO_DATA_DIR", defaultDataDir), "the member's data dir (env PIO_DATA_DIR)")
	return cmd
}

func newKeysCmd() *cobra.Command {
	keys := &cobra.Command{Use: "keys", Short: "The cluster's gossip encryption keys"}
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Install a new gossip key on every member, switch to it, and remove the old one",
		Args:  cobra.NoArgs,
	}
	f := addAPIFlags(rotate)
	rotate.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client(2 * time.Minute)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintln(out, "Rotating the gossip key: installing a new key on every member, switching to it, removing the old one ...")
		stop := progress(out)
		var res struct {
			Members int      `json:"members"`
			Skipped []string `json:"skipped"`
		}
		err = c.Do(context.Background(), http.MethodPost, "/api/cluster/keys/rotate", struct{}{}, &res)
		stop()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Done: %d member(s) use the new key.\n", res.Members)
		if len(res.Skipped) > 0 {
			fmt.Fprintf(out, "Down during the rotation (they take the new key when they come back): %v\n", res.Skipped)
		}
		return nil
	}
	keys.AddCommand(rotate)
	return keys
}

func newSecurityCmd() *cobra.Command {
	sec := &cobra.Command{Use: "security", Short: "The cluster's secrets"}
	enable := &cobra.Command{
		Use:   "enable",
		Short: "Give a cluster made by an older pio (without secrets) its secrets, mutual TLS and encrypted gossip",
		Long: `Secure a running cluster made before pio had secrets, in place: the leader makes the
cluster's secrets and hands each member its share once, over the cluster's old
channel; then every member moves to mutual TLS and encrypted gossip, and writes to
the API need the API token. Every member must be up. Nothing written is lost, and
at most one election happens. If it stops midway, run it again.`,
		Args: cobra.NoArgs,
	}
	f := addAPIFlags(enable)
	enable.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client(3 * time.Minute)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintln(out, "Securing the cluster: secrets to every member, then TLS, then keys ...")
		stop := progress(out)
		var res struct {
			Members int `json:"members"`
		}
		err = c.Do(context.Background(), http.MethodPost, "/api/cluster/security/enable", struct{}{}, &res)
		stop()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Done: %d member(s) use TLS and encrypted gossip; writes need the API token now.\n", res.Members)
		fmt.Fprintln(out, "Print the tokens on any member: sudo pio token (to join nodes), sudo pio token --api (for the UI and scripts).")
		return nil
	}
	sec.AddCommand(enable)
	return sec
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pioreactor/pio/api/client"
	"github.com/spf13/cobra"
)

func newJoinCmd() *cobra.Command {
	var force bool
	var token string
	cmd := &cobra.Command{
		Use:   "join HOST[:PORT] --token TOKEN",
		Short: "Make the local node join the cluster that the node at HOST belongs to",
		Long: `Make the local node (--node) join the cluster that the node at HOST belongs to.
TOKEN is that cluster's join token: run sudo pio token on one of its members.`,
		Args: cobra.ExactArgs(1),
	}
	f := addAPIFlags(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "discard this node's standalone data (kept aside in its data dir) and join")
	cmd.Flags().StringVar(&token, "token", os.Getenv("PIO_TOKEN"), "the cluster's join token (print it with: sudo pio token, on a member; env PIO_TOKEN)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := f.client(90 * time.Second)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "Asking %s to join the cluster of %s ...\n", c.Base, args[0])
		stop := progress(out)
		r, err := c.Join(context.Background(), args[0], token, force)
		stop()
		if err != nil {
			return err
		}
		role := "non-voter"
		if r.Voter {
			role = "voter"
		}
		fmt.Fprintf(out, "Joined: leader is %s; this node is a %s.\n", r.Leader, role)
		if r.Discarded != "" {
			fmt.Fprintf(out, "This node's previous standalone state was kept in %s.\n", r.Discarded)
		}
		return nil
	}
	return cmd
}

func newLeaveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "Make the local node leave its cluster gracefully and go back to standalone",
		Args:  cobra.NoArgs,
	}
	f := addAPIFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client(90 * time.Second)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "Asking %s to leave its cluster ...\n", c.Base)
		stop := progress(out)
		_, err = c.Leave(context.Background())
		stop()
		if err != nil {
			return err
		}
		fmt.Fprintln(out, "Left the cluster; this node is standalone again.")
		return nil
	}
	return cmd
}

// progress prints a dot a second until stopped, so a slow call shows it is alive.
func progress(w io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		dots := false
		for {
			select {
			case <-done:
				if dots {
					fmt.Fprintln(w)
				}
				return
			case <-t.C:
				fmt.Fprint(w, ".")
				dots = true
			}
		}
	}()
	return func() { close(done); <-finished }
}

// errNoLeaderView marks a status printed from one node's own view because the cluster has no leader.
var errNoLeaderView = errors.New("the cluster has no leader; shown above is this node's own view")

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the leader, the term and every member of the cluster",
		Args:  cobra.NoArgs,
	}
	f := addAPIFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client(10 * time.Second)
		if err != nil {
			return err
		}
		ctx := context.Background()
		ci, err := c.Cluster(ctx, false)
		var noLeader bool
		var ae *client.Error
		if errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable {
			fmt.Fprintln(os.Stderr, ae.Explain())
			ci, err = c.Cluster(ctx, true)
			noLeader = true
		}
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(ci); err != nil {
				return err
			}
		} else {
			printStatus(out, ci)
		}
		if noLeader {
			return errNoLeaderView
		}
		return nil
	}
	return cmd
}

func printStatus(out io.Writer, ci client.ClusterInfo) {
	if ci.Leader != nil {
		fmt.Fprintf(out, "Leader: %s (%s)  term %d  commit index %d\n", ci.Leader.Name, ci.Leader.HTTPAddr, ci.Term, ci.CommitIndex)
	} else {
		fmt.Fprintf(out, "Leader: none  term %d\n", ci.Term)
	}
	voters := 0
	for _, m := range ci.Members {
		if m.Voter {
			voters++
		}
	}
	fmt.Fprintf(out, "Members: %d, voters: %d\n\n", len(ci.Members), voters)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tVOTER\tLEADER\tHEALTH\tACTIVE\tEXPERIMENT\tHTTP\tNODE ID")
	for _, m := range ci.Members {
		role := "worker"
		if !m.Worker {
			role = "-"
		}
		exp := "-"
		if m.Experiment != nil {
			exp = *m.Experiment
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", orDash(m.Name), role, yesNo(m.Voter), yesNo(m.Leader), m.Health, m.IsActive, exp, orDash(m.HTTPAddr), m.NodeID)
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

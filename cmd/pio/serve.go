package main

import (
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/pioreactor/pio/agent"
	"github.com/spf13/cobra"
)

// tuneGC sets a soft memory limit of 96 MiB, so that the collector works
// harder before a node's heap gets big on a Pi, while leaving GOGC at Go's
// default (100): the live heap of a node is small, and an idle 3-node cluster
// here holds 25 MB a node with it (31 MB with GOGC=400, which pio used to set;
// the writes bench is the same with both). The limit sits well above the
// heap of a leader of 100 Pioreactors: a limit near the live heap makes the
// collector run without end (a leader of 60 spent 3/4 of its CPU so, at
// 48 MiB). GOGC and GOMEMLIMIT in the environment win.
func tuneGC() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(96 << 20)
	}
}

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run this node (foreground; systemd runs it on a Pi)",
		Long: `Run this node of the cluster: a Raft peer holding the whole cluster database,
the HTTP API and UI. A node started without --join and without state starts a
new cluster of one (a single Pioreactor). Every flag is also PIO_<NAME> in the
environment and a key in the --config file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Before anything is created: the data dir holds a full copy of the
			// cluster database, and hashicorp/raft's file snapshot store creates
			// state.bin and meta.json with 0666 &^ umask (see agent/private.go).
			agent.SetPrivateUmask()
			cfg, err := loadServeConfig(cmd)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: agent.SlogLevel(cfg.LogLevel)}))
			if err := cfg.Validate(); err != nil {
				return err
			}
			// Before anything else starts: it may run this binary again.
			agent.SetTimerSlack(cfg.TimerSlack, log)
			tuneGC()
			startPprof(log)
			cfg.Version = version
			cfg.FollowCores = true // this process runs one node
			rt, err := agent.StartRuntime(cfg, log)
			if err != nil {
				return err
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			s := <-sig
			log.Info("stopping", "signal", s.String())
			return rt.Close()
		},
	}
	addServeFlags(cmd)
	return cmd
}

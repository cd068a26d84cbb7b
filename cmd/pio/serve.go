package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

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
			cfg, err := loadServeConfig(cmd)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slogLevel(cfg.LogLevel)}))
			a, err := startAgent(cfg, log)
			if err != nil {
				return err
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			s := <-sig
			log.Info("stopping", "signal", s.String())
			return a.Close()
		},
	}
	addServeFlags(cmd)
	return cmd
}

// Command pio is the one binary of a pio cluster: `pio serve` runs a node, the
// other commands talk to a node's HTTP API.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/pioreactor/pio/api/client"
	"github.com/spf13/cobra"
)

// version is the software version, set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		printError(err)
		os.Exit(1)
	}
}

// printError writes err to stderr with its cause and remediation when it has them.
func printError(err error) {
	var ae *client.Error
	if errors.As(err, &ae) {
		fmt.Fprintln(os.Stderr, ae.Explain())
		return
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "pio",
		Short:         "pio runs and manages a cluster of Pioreactors where every node is a peer",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newJoinCmd(), newLeaveCmd(), newStatusCmd(), newWorkersCmd(), newExperimentsCmd(), newRunCmd(), newKillCmd(), newJobsCmd(), newTokenCmd(), newKeysCmd(), newSecurityCmd(), newHardwareCmd(), newProfilesCmd())
	return root
}

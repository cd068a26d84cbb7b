package main

import (
	"context"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/pioreactor/pio/gpio"
	"github.com/spf13/cobra"
)

// newHardwareCmd is `pio hardware`: check the unit's HAT, or turn every output off.
func newHardwareCmd() *cobra.Command {
	hw := &cobra.Command{Use: "hardware", Short: "This unit's HAT: check it, or turn every output off"}

	check := &cobra.Command{
		Use:   "check",
		Short: "What the unit found (Pi, HAT, I²C devices, PWM channels) and a self-test: blink, temperature, OD with the IR LED on and off",
		Args:  cobra.NoArgs,
	}
	f := addAPIFlags(check)
	check.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := f.client(30 * time.Second)
		if err != nil {
			return err
		}
		var out struct {
			Unit   string           `json:"unit"`
			OK     bool             `json:"ok"`
			Checks []gpio.CheckLine `json:"checks"`
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		fmt.Fprintln(cmd.OutOrStdout(), "checking the hardware of", f.node, "(a few seconds) …")
		if err := c.Do(ctx, http.MethodPost, "/unit_api/hardware/check", nil, &out); err != nil {
			return err
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
		for _, l := range out.Checks {
			mark := "ok"
			if !l.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", mark, l.What, l.Detail)
		}
		_ = w.Flush()
		if !out.OK {
			return fmt.Errorf("%s: some checks failed (see the lines marked FAIL)", out.Unit)
		}
		return nil
	}

	var mode string
	off := &cobra.Command{
		Use:   "off",
		Short: "Turn every output of the HAT off (PWM pins low, LEDs off): what systemd runs after pio serve stops, however it stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := gpio.Open(mode, 1)
			if err != nil {
				return err
			}
			if err := b.Close(); err != nil {
				return fmt.Errorf("turn the outputs off: %w", err)
			}
			if b.Name() == "sim" {
				fmt.Fprintln(cmd.OutOrStdout(), "simulated hardware: nothing to turn off")
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), "every PWM output and LED of the HAT is off")
			return nil
		},
	}
	off.Flags().StringVar(&mode, "hardware", envOr("PIO_HARDWARE", "auto"), "auto, sim or rpi (env PIO_HARDWARE)")
	hw.AddCommand(check, off)
	return hw
}

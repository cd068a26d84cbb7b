//go:build !linux

package agent

import (
	"log/slog"
	"time"
)

// SetTimerSlack does nothing outside Linux: timer slack is Linux's.
func SetTimerSlack(time.Duration, *slog.Logger) {}

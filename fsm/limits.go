package fsm

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"strings"
)

// MaxRequestIDLength bounds a request ID: the FSM remembers the last 20,000.
const MaxRequestIDLength = 128

// Bounds of one batch of readings (CmdRecordReadings).
const (
	MaxBatchReadings = 1000
	MaxBatchLogs     = 1000
	MaxBatchJobs     = 64
	MaxLogMessage    = 4096
)

// ValidRequestID checks a request ID: 1 to 128 characters of A-Z a-z 0-9 . _ : -.
func ValidRequestID(id string) error {
	if id == "" || len(id) > MaxRequestIDLength {
		return fmt.Errorf("a request ID is 1 to %d characters, not %d", MaxRequestIDLength, len(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == ':' || r == '-') {
			return fmt.Errorf("a request ID may hold letters, digits and . _ : - only, not %q", r)
		}
	}
	return nil
}

// Validate checks a batch against the bounds of one batch: sizes, lengths and finite values.
func (b RecordReadings) Validate() error {
	switch {
	case len(b.Readings) > MaxBatchReadings:
		return fmt.Errorf("%d readings in one batch; at most %d", len(b.Readings), MaxBatchReadings)
	case len(b.Logs) > MaxBatchLogs:
		return fmt.Errorf("%d log lines in one batch; at most %d", len(b.Logs), MaxBatchLogs)
	case b.Jobs != nil && len(b.Jobs.Jobs) > MaxBatchJobs:
		return fmt.Errorf("%d jobs in one report; at most %d", len(b.Jobs.Jobs), MaxBatchJobs)
	}
	for _, r := range b.Readings {
		if r.Unit == "" || r.Experiment == "" || r.Kind == "" || r.Time.IsZero() || len(r.Kind) > 64 {
			return fmt.Errorf("every reading needs pioreactor_unit, experiment, kind and time")
		}
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			return fmt.Errorf("a reading's value must be a finite number")
		}
	}
	for _, l := range b.Logs {
		if _, ok := LogLevels[l.Level]; !ok || l.Unit == "" || l.Time.IsZero() || l.Experiment == "" {
			return fmt.Errorf("every log line needs timestamp, level, pioreactor_unit and experiment")
		}
		if len(l.Message) > MaxLogMessage || len(l.Task) > 64 {
			return fmt.Errorf("a log message is at most %d bytes", MaxLogMessage)
		}
	}
	if b.Jobs != nil {
		if b.Jobs.NodeID == "" {
			return fmt.Errorf("a job report needs node_id")
		}
		for _, j := range b.Jobs.Jobs {
			if j.Name == "" || len(j.Name) > 64 {
				return fmt.Errorf("every reported job needs a job_name of at most 64 characters")
			}
		}
	}
	return nil
}

var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)

// ValidUnitName explains why name is not a valid unit name, or returns "".
func ValidUnitName(name string) string {
	switch {
	case !unitNameRE.MatchString(name):
		return fmt.Sprintf("unit name %q must be 1 to 63 letters, digits, '-' or '_'", name)
	case net.ParseIP(name) != nil:
		return fmt.Sprintf("unit name %q is an IP address", name)
	case strings.EqualFold(name, "localhost"):
		return "unit name must not be localhost"
	}
	return ""
}

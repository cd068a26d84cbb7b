package export

import (
	"errors"
	"fmt"
	"time"

	"github.com/pioreactor/pio/fsm"
)

// Limits of a request's datasets.
const (
	// maxDatasets is the most datasets one request may ask for.
	maxDatasets = 100
	// maxDatasetNameLen is the longest dataset name a request may hold.
	maxDatasetNameLen = 100
)

// Request is the body of an export request, Pioreactor's
// ExportDatasetsRequest: pointers tell a missing field from a zero one.
type Request struct {
	// Experiment is the experiment to export (required; fsm.UniversalExperiment: every one).
	Experiment *string `json:"experiment"`
	// Datasets are the names of the datasets to export (required, at least one).
	Datasets *[]string `json:"datasets"`
	// PartitionByUnit and PartitionByExperiment ask for one CSV per unit, per experiment (required).
	PartitionByUnit       *bool `json:"partition_by_unit"`
	PartitionByExperiment *bool `json:"partition_by_experiment"`
	// StartTime and EndTime bound the rows' times, both included: RFC 3339 with Z or an offset (optional).
	StartTime *string `json:"start_time"`
	EndTime   *string `json:"end_time"`
}

// ErrInvalidRequest is matched (errors.Is) by every error of Request.Job: the
// request cannot be exported as it is, and the error's text says why.
var ErrInvalidRequest = errors.New("invalid export request")

// requestError is why a request cannot be exported; it matches ErrInvalidRequest.
type requestError string

func (e requestError) Error() string        { return string(e) }
func (e requestError) Is(target error) bool { return target == ErrInvalidRequest }

// invalid returns a requestError of the formatted text.
func invalid(format string, args ...any) error { return requestError(fmt.Sprintf(format, args...)) }

// Job checks the request and returns the export it asks for, its bounds in
// UTC to the millisecond (as Pioreactor normalizes them), or an error that
// matches ErrInvalidRequest. The Job's Dir, Name, Version, Loc and Check are left for the caller.
func (r Request) Job() (Job, error) {
	for _, m := range []struct {
		missing bool
		name    string
	}{{r.Datasets == nil, "datasets"}, {r.Experiment == nil, "experiment"},
		{r.PartitionByUnit == nil, "partition_by_unit"}, {r.PartitionByExperiment == nil, "partition_by_experiment"}} {
		if m.missing {
			return Job{}, invalid("field %q is required", m.name)
		}
	}
	names := *r.Datasets
	switch {
	case len(names) == 0:
		return Job{}, invalid("datasets is empty: there is nothing to export")
	case len(names) > maxDatasets:
		return Job{}, invalid("%d datasets; at most %d may be asked for", len(names), maxDatasets)
	}
	for _, n := range names {
		if n == "" || len(n) > maxDatasetNameLen {
			return Job{}, invalid("a dataset name must be 1 to %d characters", maxDatasetNameLen)
		}
	}
	exp := *r.Experiment
	if exp == "" {
		return Job{}, invalid("experiment must not be empty")
	}
	if exp != fsm.UniversalExperiment {
		if why := fsm.ValidExperimentName(exp); why != "" {
			return Job{}, requestError(why)
		}
	}
	start, err := parseBound("start_time", r.StartTime)
	if err != nil {
		return Job{}, err
	}
	end, err := parseBound("end_time", r.EndTime)
	if err != nil {
		return Job{}, err
	}
	if start != nil && end != nil && start.After(*end) {
		return Job{}, invalid("start_time must be earlier than or equal to end_time")
	}
	for _, t := range []*time.Time{start, end} {
		if t != nil {
			*t = t.UTC().Truncate(time.Millisecond) // as Pioreactor normalizes them
		}
	}
	return Job{Experiment: exp, Datasets: append([]string{}, names...), Start: start, End: end,
		ByUnit: *r.PartitionByUnit, ByExperiment: *r.PartitionByExperiment}, nil
}

// parseBound reads an optional time of the request: RFC 3339 with Z or an offset.
func parseBound(field string, s *string) (*time.Time, error) {
	if s == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return nil, invalid("%s %q is not an RFC 3339 time with Z or an offset (e.g. 2025-01-31T00:00:00Z)", field, *s)
	}
	return &t, nil
}

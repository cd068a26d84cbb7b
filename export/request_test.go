package export

import (
	"errors"
	"testing"
	"time"
)

// Bounds are read with their offset, then kept in UTC to the millisecond, as Pioreactor does.
func TestExportBoundsNormalized(t *testing.T) {
	s, e := "2025-11-02T01:30:00.1239-05:00", "2025-11-02T06:30:00.124Z"
	r := Request{Experiment: ptr("$experiment"), Datasets: &[]string{"logs"}, PartitionByUnit: ptr(true), PartitionByExperiment: ptr(false), StartTime: &s, EndTime: &e}
	job, err := r.Job()
	if err != nil || formatUTC(*job.Start) != "2025-11-02T06:30:00.123Z" || job.Start.Location() != time.UTC || !job.ByUnit || job.ByExperiment {
		t.Fatalf("%v %+v", err, job)
	}
	q := job.rowQuery(true)
	if !q.within(time.Date(2025, 11, 2, 6, 30, 0, 124_999_999, time.UTC)) || q.within(time.Date(2025, 11, 2, 6, 30, 0, 125_000_000, time.UTC)) ||
		q.within(time.Date(2025, 11, 2, 6, 30, 0, 122_999_999, time.UTC)) {
		t.Fatalf("bounds: %v %v", q.since, q.until)
	}
}

func ptr[T any](v T) *T { return &v }

// Every refusal of Request.Job matches ErrInvalidRequest; its text is the
// cause the api answers with (the api's tests check each text).
func TestRequestRefusalsMatchErrInvalidRequest(t *testing.T) {
	ok := func() Request {
		return Request{Experiment: ptr("exp1"), Datasets: &[]string{"od_readings"}, PartitionByUnit: ptr(false), PartitionByExperiment: ptr(true)}
	}
	if _, err := ok().Job(); err != nil {
		t.Fatalf("a good request: %v", err)
	}
	bad := []func(*Request){
		func(r *Request) { r.Datasets = nil },
		func(r *Request) { r.Datasets = &[]string{} },
		func(r *Request) { r.Experiment = ptr("a..b") },
		func(r *Request) { r.StartTime = ptr("2026-01-01T00:00") },
		func(r *Request) { r.StartTime, r.EndTime = ptr("2026-01-02T00:00:00Z"), ptr("2026-01-01T00:00:00Z") },
	}
	for i, change := range bad {
		r := ok()
		change(&r)
		if _, err := r.Job(); !errors.Is(err, ErrInvalidRequest) || err.Error() == "" {
			t.Errorf("refusal %d: %v", i, err)
		}
	}
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
)

// Exports of experiment data (Pioreactor's "export data"): POST
// /api/datasets/exportable/export starts a task that writes a zip of CSVs
// into the export dir, and GET /exports/{file} serves it. Both are answered
// by the node that receives them, never forwarded to the leader: every node
// holds every reading, and the browser downloads the file from the node it
// asked. A node runs one export at a time.

const (
	// exportTimeout bounds one export task (a month of 20 units is ~10M readings).
	exportTimeout = 30 * time.Minute
	// minExportFree is the free space an export needs on the export dir's disk, to start and to go on.
	minExportFree = 64 << 20
	// keptExports and exportMaxAge bound the export dir: the newest files, the recent ones.
	keptExports  = 5
	exportMaxAge = 24 * time.Hour
	// maxExportDatasets and maxDatasetNameLen bound the datasets of a request.
	maxExportDatasets = 100
	maxDatasetNameLen = 100
)

var (
	// exportNameRE is the name of an export file; GET /exports serves no other.
	exportNameRE = regexp.MustCompile(`^export_\d{14}(_\d+)?\.zip$`)
	// exportTmpRE is the name of an export being written.
	exportTmpRE = regexp.MustCompile(`^\.export_\d{14}(_\d+)?\.zip\.tmp$`)
)

// exportBody is the body of POST /api/datasets/exportable/export, Pioreactor's
// ExportDatasetsRequest: pointers tell a missing field from a zero one.
type exportBody struct {
	Experiment            *string   `json:"experiment"`
	Datasets              *[]string `json:"datasets"`
	PartitionByUnit       *bool     `json:"partition_by_unit"`
	PartitionByExperiment *bool     `json:"partition_by_experiment"`
	StartTime             *string   `json:"start_time"`
	EndTime               *string   `json:"end_time"`
}

// exportBodyRemedy is the remediation of a refused export body.
const exportBodyRemedy = "send a JSON object with datasets (dataset names, see GET /api/datasets/exportable), experiment, " +
	"partition_by_unit and partition_by_experiment (true or false), and optionally start_time and end_time " +
	"(RFC 3339 times with Z or an offset, e.g. 2025-01-31T00:00:00Z)"

// job checks the body and returns the export it asks for, or why it cannot be done.
func (b exportBody) job() (exportJob, string) {
	for _, m := range []struct {
		missing bool
		name    string
	}{{b.Datasets == nil, "datasets"}, {b.Experiment == nil, "experiment"},
		{b.PartitionByUnit == nil, "partition_by_unit"}, {b.PartitionByExperiment == nil, "partition_by_experiment"}} {
		if m.missing {
			return exportJob{}, fmt.Sprintf("field %q is required", m.name)
		}
	}
	names := *b.Datasets
	switch {
	case len(names) == 0:
		return exportJob{}, "datasets is empty: there is nothing to export"
	case len(names) > maxExportDatasets:
		return exportJob{}, fmt.Sprintf("%d datasets; at most %d may be asked for", len(names), maxExportDatasets)
	}
	for _, n := range names {
		if n == "" || len(n) > maxDatasetNameLen {
			return exportJob{}, fmt.Sprintf("a dataset name must be 1 to %d characters", maxDatasetNameLen)
		}
	}
	exp := *b.Experiment
	if exp == "" {
		return exportJob{}, "experiment must not be empty"
	}
	if exp != fsm.UniversalExperiment {
		if why := fsm.ValidExperimentName(exp); why != "" {
			return exportJob{}, why
		}
	}
	start, why := parseBound("start_time", b.StartTime)
	if why != "" {
		return exportJob{}, why
	}
	end, why := parseBound("end_time", b.EndTime)
	if why != "" {
		return exportJob{}, why
	}
	if start != nil && end != nil && start.After(*end) {
		return exportJob{}, "start_time must be earlier than or equal to end_time"
	}
	for _, t := range []*time.Time{start, end} {
		if t != nil {
			*t = t.UTC().Truncate(time.Millisecond) // as Pioreactor normalizes them
		}
	}
	return exportJob{experiment: exp, datasets: append([]string{}, names...), start: start, end: end,
		byUnit: *b.PartitionByUnit, byExperiment: *b.PartitionByExperiment}, ""
}

// parseBound reads an optional time of the body: RFC 3339 with Z or an offset.
func parseBound(field string, s *string) (*time.Time, string) {
	if s == nil {
		return nil, ""
	}
	t, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil {
		return nil, fmt.Sprintf("%s %q is not an RFC 3339 time with Z or an offset (e.g. 2025-01-31T00:00:00Z)", field, *s)
	}
	return &t, ""
}

// freeSpace returns the bytes an unprivileged user may still write on the disk of dir.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// checkFreeSpace returns a 507 error when the disk of dir has less than need bytes free.
func checkFreeSpace(dir string, need uint64) error {
	free, err := freeSpace(dir)
	if err != nil {
		return fmt.Errorf("free space of the export dir %s: %w", dir, err)
	}
	if free < need {
		return &client.Error{Status: http.StatusInsufficientStorage, Message: "not enough free space to export",
			Cause:       fmt.Sprintf("an export needs %d MB free on the disk of %s; %d MB are free", need>>20, dir, free>>20),
			Remediation: "free space on this Pioreactor's disk (SD card): remove old files, or delete old exports in " + dir + "; then export again"}
	}
	return nil
}

// exportDir makes the export dir if need be and returns it; "" when this node has none.
func (s *Server) exportDir() (string, error) {
	if s.cfg.ExportDir == "" {
		return "", nil
	}
	return s.cfg.ExportDir, os.MkdirAll(s.cfg.ExportDir, 0o750)
}

// pruneExports keeps the export dir bounded: it removes what an export left
// half written (only while none runs), the exports older than exportMaxAge,
// and the oldest beyond keptExports. Other files are left alone.
func (s *Server) pruneExports(dir string, now time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.log.Warn("export dir not read", "dir", dir, "error", err)
		return
	}
	type file struct {
		name string
		mod  time.Time
	}
	var zips []file
	remove := func(name string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("old export not removed", "file", name, "error", err)
		}
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		switch {
		case exportTmpRE.MatchString(e.Name()):
			remove(e.Name())
		case exportNameRE.MatchString(e.Name()):
			if now.Sub(info.ModTime()) > exportMaxAge {
				remove(e.Name())
				continue
			}
			zips = append(zips, file{e.Name(), info.ModTime()})
		}
	}
	sort.Slice(zips, func(i, j int) bool {
		if !zips[i].mod.Equal(zips[j].mod) {
			return zips[i].mod.After(zips[j].mod)
		}
		return zips[i].name > zips[j].name
	})
	for i := keptExports; i < len(zips); i++ {
		remove(zips[i].name)
	}
}

// exportFileName is the name of a new export made at now (UTC, as
// Pioreactor's), with a suffix when that name is taken in dir.
func exportFileName(dir string, now time.Time) string {
	base := "export_" + now.UTC().Format(stampLayout)
	name := base + ".zip"
	for i := 1; ; i++ {
		if _, err := os.Lstat(filepath.Join(dir, name)); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = base + "_" + strconv.Itoa(i) + ".zip"
	}
}

// exportData answers POST /api/datasets/exportable/export: 202 with a task
// whose result is {"result": true, "filename", "msg": "Finished"}; 400 for a
// bad body, 409 while this node runs another export, 507 when its disk is
// short of space.
func (s *Server) exportData(c *gin.Context) {
	var b exportBody
	if !checkRequestID(c) || !decodeBody(c, &b) {
		return
	}
	bodyRead(c)
	job, why := b.job()
	if why != "" {
		abort(c, http.StatusBadRequest, "bad request body", why, exportBodyRemedy)
		return
	}
	dir, err := s.exportDir()
	switch {
	case err != nil:
		fail(c, fmt.Errorf("export dir: %w", err))
		return
	case dir == "":
		abort(c, http.StatusServiceUnavailable, "this node makes no exports", "it was started without an export dir",
			"export through another node of the cluster (`pio serve` gives every node one, in its data dir)")
		return
	}
	s.exportMu.Lock()
	defer s.exportMu.Unlock()
	if s.exportTask != "" {
		abort(c, http.StatusConflict, "an export is already running on this node", "task "+s.exportTask+" is exporting; a node runs one export at a time",
			"wait until it finishes (GET /unit_api/task_results/"+s.exportTask+"), then export again")
		return
	}
	if err := checkFreeSpace(dir, minExportFree); err != nil {
		fail(c, err)
		return
	}
	job.dir, job.name, job.loc = dir, exportFileName(dir, time.Now()), time.Local
	job.version = s.cfg.Version
	if job.version == "" {
		job.version = "pio"
	}
	job.check = func() error { return checkFreeSpace(dir, minExportFree) }
	s.log.Info("export started", "file", job.name, "experiment", job.experiment, "datasets", job.datasets)
	accepted := s.tasks.runFor(s.cfg.Name, exportTimeout, func(ctx context.Context) (any, error) {
		defer func() {
			s.exportMu.Lock()
			s.exportTask = ""
			s.exportMu.Unlock()
		}()
		s.pruneExports(dir, time.Now())
		started := time.Now()
		if err := writeExport(ctx, s.fsm, job, s.log); err != nil {
			s.log.Error("export failed", "file", job.name, "experiment", job.experiment, "error", err)
			return nil, exportFailure(err)
		}
		s.log.Info("export finished", "file", job.name, "experiment", job.experiment, "took", time.Since(started).Round(time.Millisecond))
		s.pruneExports(dir, time.Now())
		return gin.H{"result": true, "filename": job.name, "msg": "Finished"}, nil
	})
	s.exportTask = accepted["task_id"].(string)
	c.JSON(http.StatusAccepted, accepted)
}

// exportFailure explains why an export failed, as its task's error.
func exportFailure(err error) error {
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return &client.Error{Status: http.StatusGatewayTimeout, Message: "the export took too long", Cause: fmt.Sprintf("it did not finish within %s", exportTimeout),
			Remediation: "export fewer datasets, or a shorter time range (start_time, end_time), at a time"}
	case errors.Is(err, context.Canceled):
		return &client.Error{Status: http.StatusServiceUnavailable, Message: "the export was stopped", Cause: "the node stopped during the export",
			Remediation: "export again once the node runs"}
	case errors.Is(err, syscall.ENOSPC):
		return &client.Error{Status: http.StatusInsufficientStorage, Message: "the disk filled up during the export", Cause: err.Error(),
			Remediation: "free space on this Pioreactor's disk (SD card), then export again"}
	}
	return &client.Error{Status: http.StatusInternalServerError, Message: "the export failed", Cause: err.Error(),
		Remediation: "export again; if it fails again, look at this node's log (journalctl -u pio)"}
}

// downloadExport answers GET (and HEAD) /exports/{file}: an export of this
// node's export dir, as application/zip. Names other than an export's are 404.
func (s *Server) downloadExport(c *gin.Context) {
	name := c.Param("filename")
	notFound := func(cause string) {
		abort(c, http.StatusNotFound, "no such export", cause,
			fmt.Sprintf("export again (POST /api/datasets/exportable/export) on this node; a node keeps its last %d exports for %s", keptExports, exportMaxAge))
	}
	if s.cfg.ExportDir == "" || !exportNameRE.MatchString(name) {
		notFound(strconv.Quote(name) + " is not the name of an export (export_YYYYMMDDHHMMSS.zip)")
		return
	}
	f, err := os.Open(filepath.Join(s.cfg.ExportDir, name))
	if err != nil {
		notFound(name + " is not on this node (it may have been removed, or made by another node)")
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		fail(c, err)
		return
	}
	longRequest(c, exportTimeout) // a big file over a slow Wi-Fi outlives the usual write timeout
	c.Header("Content-Type", "application/zip")
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	http.ServeContent(c.Writer, c.Request, name, info.ModTime(), f)
}

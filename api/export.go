package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/export"
)

// Exports of experiment data (Pioreactor's "export data"): POST
// /api/datasets/exportable/export starts a task that writes a zip of CSVs
// into the export dir, and GET /exports/{file} serves it. Both are answered
// by the node that receives them, never forwarded to the leader: every node
// holds every reading, and the browser downloads the file from the node it
// asked. A node runs one export at a time. Package export makes the files;
// these handlers only check the request, run the task and answer.

// exportTimeout bounds one export task (a month of 20 units is ~10M readings).
const exportTimeout = 30 * time.Minute

// Previews show a few rows.
const (
	defaultPreviewRows = 5
	maxPreviewRows     = 100
)

// listDatasets answers GET /api/datasets/exportable: every exportable
// dataset's descriptor. It is this node's own answer (they are built in).
func (s *Server) listDatasets(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=60")
	c.JSON(http.StatusOK, export.Datasets())
}

// previewDataset answers GET /api/datasets/exportable/{name}/preview?n_rows=N:
// the first N rows (default 5, at most 100) of the dataset's table, of any
// experiment (oldest first), without generated columns, as objects.
func (s *Server) previewDataset(c *gin.Context) {
	n := defaultPreviewRows
	if v, ok := c.GetQuery("n_rows"); ok {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > maxPreviewRows {
			abort(c, http.StatusBadRequest, "invalid n_rows", "n_rows is "+strconv.Quote(v)+"; it must be a whole number from 1 to 100",
				"ask for 1 to 100 rows, e.g. ?n_rows=5")
			return
		}
	}
	rows, err := export.Preview(s.fsm, c.Param("name"), n)
	switch {
	case errors.Is(err, export.ErrUnknownDataset):
		abort(c, http.StatusNotFound, "dataset not found", strconv.Quote(c.Param("name"))+" is not an exportable dataset",
			"list the exportable datasets with GET /api/datasets/exportable and use a dataset_name of it")
	case err != nil:
		fail(c, err)
	default:
		c.JSON(http.StatusOK, rows)
	}
}

// exportBodyRemedy is the remediation of a refused export body.
const exportBodyRemedy = "send a JSON object with datasets (dataset names, see GET /api/datasets/exportable), experiment, " +
	"partition_by_unit and partition_by_experiment (true or false), and optionally start_time and end_time " +
	"(RFC 3339 times with Z or an offset, e.g. 2025-01-31T00:00:00Z)"

// exportDir makes the export dir if need be and returns it; "" when this node has none.
func (s *Server) exportDir() (string, error) {
	if s.cfg.ExportDir == "" {
		return "", nil
	}
	return s.cfg.ExportDir, export.MakeDir(s.cfg.ExportDir)
}

// checkFreeSpace is export.CheckFreeSpace, its *export.SpaceError answered 507.
func checkFreeSpace(dir string, need uint64) error {
	err := export.CheckFreeSpace(dir, need)
	var se *export.SpaceError
	if errors.As(err, &se) {
		return &client.Error{Status: http.StatusInsufficientStorage, Message: "not enough free space to export",
			Cause:       fmt.Sprintf("an export needs %d MB free on the disk of %s; %d MB are free", se.Need>>20, se.Dir, se.Free>>20),
			Remediation: "free space on this Pioreactor's disk (SD card): remove old files, or delete old exports in " + se.Dir + "; then export again"}
	}
	return err
}

// exportData answers POST /api/datasets/exportable/export: 202 with a task
// whose result is {"result": true, "filename", "msg": "Finished"}; 400 for a
// bad body, 409 while this node runs another export, 507 when its disk is
// short of space.
func (s *Server) exportData(c *gin.Context) {
	var b export.Request
	if !checkRequestID(c) || !decodeBody(c, &b) {
		return
	}
	bodyRead(c)
	job, err := b.Job()
	if err != nil {
		abort(c, http.StatusBadRequest, "bad request body", err.Error(), exportBodyRemedy)
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
	if err := checkFreeSpace(dir, export.MinFree); err != nil {
		fail(c, err)
		return
	}
	job.Dir, job.Name, job.Loc = dir, export.FileName(dir, time.Now()), time.Local
	job.Version = s.cfg.Version
	if job.Version == "" {
		job.Version = "pio"
	}
	job.Check = func() error { return checkFreeSpace(dir, export.MinFree) }
	s.log.Info("export started", "file", job.Name, "experiment", job.Experiment, "datasets", job.Datasets)
	accepted := s.tasks.runFor(s.cfg.Name, exportTimeout, func(ctx context.Context) (any, error) {
		defer func() {
			s.exportMu.Lock()
			s.exportTask = ""
			s.exportMu.Unlock()
		}()
		export.Prune(dir, time.Now(), s.log)
		started := time.Now()
		if err := export.Write(ctx, s.fsm, job, s.log); err != nil {
			s.log.Error("export failed", "file", job.Name, "experiment", job.Experiment, "error", err)
			return nil, exportFailure(err)
		}
		s.log.Info("export finished", "file", job.Name, "experiment", job.Experiment, "took", time.Since(started).Round(time.Millisecond))
		export.Prune(dir, time.Now(), s.log)
		return gin.H{"result": true, "filename": job.Name, "msg": "Finished"}, nil
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
			fmt.Sprintf("export again (POST /api/datasets/exportable/export) on this node; a node keeps its last %d exports for %s", export.Kept, export.MaxAge))
	}
	if s.cfg.ExportDir == "" || !export.ValidName(name) {
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

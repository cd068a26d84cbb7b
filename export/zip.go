package export

import (
	"archive/zip"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/pioreactor/pio/fsm"
)

// An export is one zip file, laid out as Pioreactor's: for each dataset a
// folder with its schema.json and one CSV per partition (experiment, unit),
// and a manifest.json at the root. It is written to a hidden temporary file
// in the export dir, row by row as the rows are read, and renamed to its
// name only once complete.

// Job is one export: what was asked, checked and normalized (Request.Job
// makes it), and where it goes (the caller fills Dir, Name, Version and Loc).
type Job struct {
	// Experiment is the experiment whose rows are exported (fsm.UniversalExperiment: every one's).
	Experiment string
	// Datasets are the names asked for, in order; unknown ones are skipped and logged, repeated ones written once.
	Datasets []string
	// Start and End bound the rows' times (UTC, milliseconds; nil: no bound), both included.
	Start, End *time.Time
	// ByUnit and ByExperiment ask for one CSV per unit and per experiment.
	ByUnit, ByExperiment bool
	// Dir is the export dir and Name the zip's file name in it (see FileName).
	Dir, Name string
	// Version is the pioreactor_version of the manifest.
	Version string
	// Loc is the zone of the local times of the CSVs and the manifest (the node's).
	Loc *time.Location
	// Check, if not nil, is called every few seconds while rows are written;
	// its error stops the export (e.g. CheckFreeSpace).
	Check func() error
}

// rowQuery returns the query of a dataset's rows: a reading's timestamp is
// compared at millisecond precision, as Pioreactor compares stored texts.
func (j Job) rowQuery(byUnit bool) rowQuery {
	q := rowQuery{exp: j.Experiment, byUnit: byUnit}
	if j.Start != nil {
		q.since = *j.Start
	}
	if j.End != nil {
		q.until = j.End.Add(time.Millisecond - 1)
	}
	return q
}

// csvFile is the manifest's record of one CSV of a dataset.
type csvFile struct {
	path      string
	rows      int
	exp, unit string
}

// checkEvery is how often (in rows) an export looks at its context and its clock.
const checkEvery = 4096

// checkInterval is the least time between two of Job.Check's calls.
const checkInterval = 2 * time.Second

// Write writes the export job asks for from f's datasets into a hidden
// temporary file of job.Dir, and renames it to job.Name once complete; on
// any failure (ctx ended, job.Check failed, a write failed) nothing of it is left.
func Write(ctx context.Context, f *fsm.FSM, job Job, log *slog.Logger) (err error) {
	final := filepath.Join(job.Dir, job.Name)
	tmp := filepath.Join(job.Dir, "."+job.Name+".tmp")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	zw := zip.NewWriter(out)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestSpeed) // a Pi's CPU, not the file's size, is what is short
	})
	now := time.Now()
	stamp := now.Format(stampLayout) // the CSVs' names: the node's local time, as in Pioreactor
	var manifest []any
	done := map[string]bool{}
	for _, name := range job.Datasets {
		d, ok := datasetByName(name)
		if !ok {
			log.Warn("export: no such dataset; it is skipped", "dataset", name, "experiment", job.Experiment, "available", datasetNames())
			continue
		}
		if done[name] {
			continue // asked twice: one folder
		}
		done[name] = true
		files, total, err := writeDataset(ctx, zw, f, d, job, stamp)
		if err != nil {
			return fmt.Errorf("dataset %s: %w", name, err)
		}
		if total == 0 {
			log.Info("export: no rows in this dataset with these filters", "dataset", name, "experiment", job.Experiment)
		}
		manifest = append(manifest, manifestEntry(d, files, total))
	}
	if manifest == nil {
		manifest = []any{}
	}
	if err := writeJSON(zw, "manifest.json", job.manifest(now, manifest)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

// writeDataset writes a dataset's folder, its schema.json and its CSVs, one
// per partition; it returns the CSVs and the number of rows.
func writeDataset(ctx context.Context, zw *zip.Writer, f *fsm.FSM, d exportable, job Job, stamp string) ([]csvFile, int, error) {
	header := d.header()
	if _, err := zw.CreateHeader(zipHeader(d.DatasetName+"/", fs.ModeDir|0o755)); err != nil {
		return nil, 0, err
	}
	if err := writeJSON(zw, d.DatasetName+"/schema.json", schemaOf(d, header)); err != nil {
		return nil, 0, err
	}
	expAt, unitAt := -1, -1
	if job.ByExperiment && d.HasExperiment {
		expAt = slices.Index(d.columns, "experiment")
	}
	if (job.ByUnit || d.AlwaysPartitionByUnit) && d.HasUnit {
		unitAt = slices.Index(d.columns, "pioreactor_unit")
	}
	var tsAt []int
	for _, c := range d.TimestampColumns {
		tsAt = append(tsAt, slices.Index(d.columns, c))
	}
	orderAt := slices.Index(d.columns, d.DefaultOrderBy)
	created, hasCreated := time.Time{}, false
	if e, ok := f.Experiment(job.Experiment); ok {
		created, hasCreated = e.CreatedAt, true
	}

	var (
		files   []csvFile
		w       io.Writer
		fields  = make([]string, len(header))
		line    []byte
		total   int
		checked = time.Now()
	)
	err := d.rows(f, job.rowQuery(unitAt >= 0), func(row []any) error {
		exp, unit := "all_experiments", "all_units"
		if expAt >= 0 {
			exp = cellText(row[expAt])
		}
		if unitAt >= 0 {
			unit = cellText(row[unitAt])
		}
		if n := len(files); n == 0 || files[n-1].exp != exp || files[n-1].unit != unit {
			path := csvMemberName(d.DatasetName, exp, unit, stamp)
			var err error
			if w, err = zw.CreateHeader(zipHeader(path, 0o644)); err != nil {
				return err
			}
			if _, err := w.Write(appendCSVRow(line[:0], header)); err != nil {
				return err
			}
			files = append(files, csvFile{path: path, exp: exp, unit: unit})
		}
		for i, v := range row {
			fields[i] = cellText(v)
		}
		k := len(row)
		for _, at := range tsAt {
			fields[k] = ""
			if t, ok := row[at].(time.Time); ok && !t.IsZero() {
				fields[k] = formatLocal(t, job.Loc)
			}
			k++
		}
		if d.hasHours() {
			fields[k] = ""
			if t, ok := row[orderAt].(time.Time); ok && !t.IsZero() && hasCreated {
				fields[k] = formatFloat(hoursSince(t, created))
			}
		}
		line = appendCSVRow(line[:0], fields)
		if _, err := w.Write(line); err != nil {
			return err
		}
		files[len(files)-1].rows++
		total++
		if total%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			if job.Check != nil && time.Since(checked) >= checkInterval {
				checked = time.Now()
				return job.Check()
			}
		}
		return nil
	})
	if err == nil {
		err = ctx.Err()
	}
	return files, total, err
}

// zipHeader is the header of a member written now: a folder is stored, a file deflated.
func zipHeader(name string, mode fs.FileMode) *zip.FileHeader {
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now()}
	if mode.IsDir() {
		h.Method = zip.Store
	}
	h.SetMode(mode)
	return h
}

// writeJSON writes v as a JSON member of the zip, in Python's json style.
func writeJSON(zw *zip.Writer, name string, v any) error {
	b, err := pyJSON(v)
	if err != nil {
		return err
	}
	w, err := zw.CreateHeader(zipHeader(name, 0o644))
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// schemaOf is a dataset's schema.json: its descriptor and its CSVs' columns.
func schemaOf(d exportable, header []string) map[string]any {
	generated := append([]string{}, header[len(d.columns):]...)
	entities := []string{}
	if d.HasExperiment && slices.Contains(header, "experiment") {
		entities = append(entities, "experiment")
	}
	if d.HasUnit && slices.Contains(header, "pioreactor_unit") {
		entities = append(entities, "pioreactor_unit")
	}
	columns := make([]any, len(header))
	for i, c := range header {
		col := map[string]any{"name": c, "generated": i >= len(d.columns)}
		if s := d.ColumnDescriptions[c]; s != "" {
			col["description"] = s
		}
		if s := d.ColumnUnits[c]; s != "" {
			col["unit"] = s
		}
		columns[i] = col
	}
	return map[string]any{
		"schema_version":    1,
		"dataset_name":      d.DatasetName,
		"display_name":      d.DisplayName,
		"description":       d.Description,
		"source":            d.Source,
		"table":             d.Table,
		"query":             d.Query,
		"default_order_by":  d.DefaultOrderBy,
		"timestamp_columns": d.TimestampColumns,
		"entity_columns":    entities,
		"generated_columns": generated,
		"columns":           columns,
	}
}

// manifestEntry is a dataset's entry in manifest.json.
func manifestEntry(d exportable, files []csvFile, total int) map[string]any {
	paths, entries := []string{}, []any{}
	exps, units := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		paths = append(paths, f.path)
		entries = append(entries, map[string]any{"path": f.path, "row_count": f.rows,
			"partition": map[string]any{"experiment": f.exp, "pioreactor_unit": f.unit}})
		if f.exp != "all_experiments" {
			exps[f.exp] = true
		}
		if f.unit != "all_units" {
			units[f.unit] = true
		}
	}
	return map[string]any{
		"dataset_name": d.DatasetName,
		"display_name": d.DisplayName,
		"schema_path":  d.DatasetName + "/schema.json",
		"csv_paths":    paths,
		"csv_files":    entries,
		"row_count":    total,
		"partition_values": map[string]any{
			"experiments":      sortedKeys(exps),
			"pioreactor_units": sortedKeys(units),
		},
	}
}

// manifest is the export's manifest.json, created at now.
func (j Job) manifest(now time.Time, datasets []any) map[string]any {
	bound := func(t *time.Time) any {
		if t == nil {
			return nil
		}
		return formatUTC(*t)
	}
	return map[string]any{
		"schema_version":     1,
		"pioreactor_version": j.Version,
		"export_created_at":  isoLocal(now.In(j.Loc)),
		"filters": map[string]any{
			"experiment":              j.Experiment,
			"start_time":              bound(j.Start),
			"end_time":                bound(j.End),
			"partition_by_unit":       j.ByUnit,
			"partition_by_experiment": j.ByExperiment,
		},
		"selected_datasets": j.Datasets,
		"datasets":          datasets,
	}
}

// isoLocal is t as Python's datetime.isoformat writes a local time:
// microseconds (left out when zero) and the offset.
func isoLocal(t time.Time) string {
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05-07:00")
	}
	return t.Format("2006-01-02T15:04:05.000000-07:00")
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

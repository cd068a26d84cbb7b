package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/pioreactor/pio/fsm"
)

// The exportable datasets are Pioreactor's built-in ones that pio has data
// for, under Pioreactor's names and columns, so that the files of an export
// read the same. Their rows come from this node's copy of the cluster's
// state and readings store (every node holds all of them).

// Dataset describes one exportable dataset: Pioreactor's Dataset object,
// with every field in its order, as the api lists it (GET /api/datasets/exportable).
type Dataset struct {
	DatasetName           string            `json:"dataset_name"`
	Description           string            `json:"description"`
	DisplayName           string            `json:"display_name"`
	HasExperiment         bool              `json:"has_experiment"`
	HasUnit               bool              `json:"has_unit"`
	DefaultOrderBy        string            `json:"default_order_by"`
	Table                 string            `json:"table"`
	Query                 *string           `json:"query"`
	Source                string            `json:"source"`
	TimestampColumns      []string          `json:"timestamp_columns"`
	AlwaysPartitionByUnit bool              `json:"always_partition_by_unit"`
	ColumnDescriptions    map[string]string `json:"column_descriptions"`
	ColumnUnits           map[string]string `json:"column_units"`
}

// rowQuery selects the rows of a dataset: one experiment's, from since to
// until (zero: no bound), by unit then time when byUnit, else by time.
type rowQuery struct {
	exp          string
	since, until time.Time
	byUnit       bool
}

// within reports whether t is within q's bounds.
func (q rowQuery) within(t time.Time) bool {
	return (q.since.IsZero() || !t.Before(q.since)) && (q.until.IsZero() || !t.After(q.until))
}

// rowSource calls emit with each row of a dataset (its table's columns: nil,
// string, float64 or time.Time cells), in order, until emit fails. The row
// is emit's only while it runs: the source may reuse it.
type rowSource func(f *fsm.FSM, q rowQuery, emit func(row []any) error) error

// exportable is a dataset and where its rows come from.
type exportable struct {
	Dataset
	// columns are the table's columns, in order (the generated ones follow them in a CSV).
	columns []string
	rows    rowSource
}

// header is the columns of the dataset's CSVs: the table's, then one
// <column>_localtime for each timestamp column, then
// hours_since_experiment_created when rows belong to an experiment.
func (d exportable) header() []string {
	h := append([]string{}, d.columns...)
	for _, c := range d.TimestampColumns {
		h = append(h, c+"_localtime")
	}
	if d.hasHours() {
		h = append(h, hoursColumn)
	}
	return h
}

// hasHours reports whether the dataset's CSVs end with hours_since_experiment_created.
func (d exportable) hasHours() bool { return d.HasExperiment && d.DefaultOrderBy != "" }

// hoursColumn is the generated column of the hours from the experiment's creation.
const hoursColumn = "hours_since_experiment_created"

// The descriptions of the columns every dataset of readings shares.
var (
	entityColumns = map[string]string{
		"experiment":      "The experiment's name.",
		"pioreactor_unit": "The name of the Pioreactor.",
	}
	timeColumns = map[string]string{
		"timestamp":           "When it was measured or happened, in UTC.",
		"timestamp_localtime": "The same time in the local time zone of the node that exported it.",
		hoursColumn:           "Hours between the experiment's creation and the timestamp.",
	}
)

// describe joins column descriptions: the shared ones, then the dataset's own.
func describe(own map[string]string, shared ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range append(shared, own) {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// readingsDataset is a dataset of one kind of reading: its columns start
// with experiment, pioreactor_unit and timestamp; value is the column of the
// reading's value, the others are empty.
func readingsDataset(d Dataset, kind string, columns []string, value string) exportable {
	d.HasExperiment, d.HasUnit, d.Table, d.Source = true, true, d.DatasetName, "app"
	d.DefaultOrderBy, d.TimestampColumns = "timestamp", []string{"timestamp"}
	at := 0
	for i, c := range columns {
		if c == value {
			at = i
		}
	}
	return exportable{Dataset: d, columns: columns, rows: func(f *fsm.FSM, q rowQuery, emit func([]any) error) error {
		row := make([]any, len(columns))
		return f.EachReading(q.exp, kind, q.since, q.until, q.byUnit, func(r fsm.Reading) error {
			clear(row)
			row[0], row[1], row[2], row[at] = r.Experiment, r.Unit, r.Time, r.Value
			return emit(row)
		})
	}}
}

// logRows are the job log lines of an experiment. Their source is "app",
// as Pioreactor's own jobs log it; by unit, the units are found first, then
// read one at a time.
func logRows(f *fsm.FSM, q rowQuery, emit func([]any) error) error {
	row := make([]any, 7)
	put := func(l fsm.LogEntry) error {
		row[0], row[1], row[2], row[3], row[4], row[5], row[6] = l.Experiment, l.Unit, l.Time, l.Message, "app", l.Level, l.Task
		return emit(row)
	}
	if !q.byUnit {
		return f.EachLog(q.exp, "", q.since, q.until, put)
	}
	seen := map[string]bool{}
	if err := f.EachLog(q.exp, "", q.since, q.until, func(l fsm.LogEntry) error { seen[l.Unit] = true; return nil }); err != nil {
		return err
	}
	units := make([]string, 0, len(seen))
	for u := range seen {
		units = append(units, u)
	}
	sort.Strings(units)
	for _, u := range units {
		if err := f.EachLog(q.exp, u, q.since, q.until, put); err != nil {
			return err
		}
	}
	return nil
}

// experimentRows are every experiment of the cluster, oldest first, whichever
// experiment was asked for (as in Pioreactor); the time bounds apply to created_at.
func experimentRows(f *fsm.FSM, q rowQuery, emit func([]any) error) error {
	exps := f.Experiments()
	sort.SliceStable(exps, func(i, j int) bool { return exps[i].CreatedAt.Before(exps[j].CreatedAt) })
	for _, e := range exps {
		if !q.within(e.CreatedAt) {
			continue
		}
		if err := emit([]any{e.Experiment, e.CreatedAt, e.Description}); err != nil {
			return err
		}
	}
	return nil
}

// labelRows are the labels of the experiment's units, by unit. pio keeps no
// time of a label, so created_at is empty and the time bounds do not apply.
func labelRows(f *fsm.FSM, q rowQuery, emit func([]any) error) error {
	labels := f.Labels(q.exp)
	units := make([]string, 0, len(labels))
	for u := range labels {
		units = append(units, u)
	}
	sort.Strings(units)
	for _, u := range units {
		if err := emit([]any{q.exp, u, labels[u], nil}); err != nil {
			return err
		}
	}
	return nil
}

// datasets are the built-in exportable datasets, in the order of
// Pioreactor's descriptor files.
var datasets = []exportable{
	{
		Dataset: Dataset{DatasetName: "logs", DisplayName: "Pioreactor logs",
			Description:   "Every log line the experiment's jobs wrote on every Pioreactor, oldest first.",
			HasExperiment: true, HasUnit: true, DefaultOrderBy: "timestamp", Table: "logs", Source: "app",
			TimestampColumns: []string{"timestamp"},
			ColumnDescriptions: describe(map[string]string{
				"timestamp": "When the line was logged, in UTC.",
				"message":   "What the job logged.",
				"source":    "What wrote the line: app for pio's own jobs.",
				"level":     "The line's level, in capitals: DEBUG, INFO, NOTICE, WARNING or ERROR.",
				"task":      "The job that logged it.",
			}, entityColumns, timeColumns),
			ColumnUnits: map[string]string{hoursColumn: "h"}},
		columns: []string{"experiment", "pioreactor_unit", "timestamp", "message", "source", "level", "task"},
		rows:    logRows,
	},
	readingsDataset(Dataset{DatasetName: "od_readings", DisplayName: "Optical density",
		Description: "The optical density each Pioreactor's OD job measured, over time: the input of the growth rate.",
		ColumnDescriptions: describe(map[string]string{
			"od_reading": "The optical density measured (calibrated when a calibration is in use).",
			"angle":      "The angle of the photodiode; pio leaves it empty.",
			"channel":    "The photodiode's channel; pio leaves it empty.",
		}, entityColumns, timeColumns),
		ColumnUnits: map[string]string{hoursColumn: "h", "od_reading": "OD or AU", "angle": "degrees"}},
		"od", []string{"experiment", "pioreactor_unit", "timestamp", "od_reading", "angle", "channel"}, "od_reading"),
	readingsDataset(Dataset{DatasetName: "od_readings_filtered", DisplayName: "Normalized optical density",
		Description: "The optical density relative to its start, smoothed, as Pioreactor's charts draw it. pio records none yet, so it is empty.",
		ColumnDescriptions: describe(map[string]string{
			"normalized_od_reading": "The smoothed optical density divided by its value at the start.",
		}, entityColumns, timeColumns),
		ColumnUnits: map[string]string{hoursColumn: "h", "normalized_od_reading": "nOD"}},
		"od_filtered", []string{"experiment", "pioreactor_unit", "timestamp", "normalized_od_reading"}, "normalized_od_reading"),
	readingsDataset(Dataset{DatasetName: "growth_rates", DisplayName: "Implied growth rate",
		Description: "The growth rate each Pioreactor computed from its optical density, over time.",
		ColumnDescriptions: describe(map[string]string{
			"rate": "The growth rate implied by the change of optical density.",
		}, entityColumns, timeColumns),
		ColumnUnits: map[string]string{hoursColumn: "h", "rate": "h^-1"}},
		"growth_rate", []string{"experiment", "pioreactor_unit", "timestamp", "rate"}, "rate"),
	{
		Dataset: Dataset{DatasetName: "experiments", DisplayName: "Experiments",
			Description:   "Every experiment of the cluster: its name, when it was created and its description.",
			HasExperiment: false, HasUnit: false, DefaultOrderBy: "created_at", Table: "experiments", Source: "app",
			TimestampColumns: []string{"created_at"},
			ColumnDescriptions: describe(map[string]string{
				"created_at":           "When the experiment was created, in UTC.",
				"created_at_localtime": "The same time in the local time zone of the node that exported it.",
				"description":          "The experiment's description.",
			}, map[string]string{"experiment": entityColumns["experiment"]}),
			ColumnUnits: map[string]string{}},
		columns: []string{"experiment", "created_at", "description"},
		rows:    experimentRows,
	},
	readingsDataset(Dataset{DatasetName: "dosing_events", DisplayName: "Dosing event log",
		Description: "Each volume of liquid a Pioreactor's pumps moved, and when.",
		ColumnDescriptions: describe(map[string]string{
			"event":            "The kind of dosing (add media, add alternative media, remove waste); pio leaves it empty.",
			"volume_change_ml": "The volume moved by the dosing.",
			"source_of_event":  "What asked for the dosing; pio leaves it empty.",
		}, entityColumns, timeColumns),
		ColumnUnits: map[string]string{hoursColumn: "h", "volume_change_ml": "mL"}},
		"dosing", []string{"experiment", "pioreactor_unit", "timestamp", "event", "volume_change_ml", "source_of_event"}, "volume_change_ml"),
	readingsDataset(Dataset{DatasetName: "temperature_readings", DisplayName: "Temperature readings",
		Description: "The temperature of each Pioreactor's vial, over time.",
		ColumnDescriptions: describe(map[string]string{
			"temperature_c": "The temperature measured.",
		}, entityColumns, timeColumns),
		ColumnUnits: map[string]string{hoursColumn: "h", "temperature_c": "degC"}},
		"temperature", []string{"experiment", "pioreactor_unit", "timestamp", "temperature_c"}, "temperature_c"),
	readingsDataset(Dataset{DatasetName: "stirring_rates", DisplayName: "Stirring rates",
		Description: "The stirring speed each Pioreactor measured, over time.",
		ColumnDescriptions: describe(map[string]string{
			"measured_rpm": "The stirring speed measured.",
		}, entityColumns, timeColumns),
		ColumnUnits: map[string]string{hoursColumn: "h", "measured_rpm": "RPM"}},
		"rpm", []string{"experiment", "pioreactor_unit", "timestamp", "measured_rpm"}, "measured_rpm"),
	{
		Dataset: Dataset{DatasetName: "pioreactor_unit_labels", DisplayName: "Pioreactor unit labels",
			Description:   "The label each Pioreactor was given in the experiment.",
			HasExperiment: true, HasUnit: true, DefaultOrderBy: "created_at", Table: "pioreactor_unit_labels", Source: "app",
			TimestampColumns: []string{"created_at"},
			ColumnDescriptions: describe(map[string]string{
				"label":                "The label given to the Pioreactor in this experiment.",
				"created_at":           "When the label was given, in UTC; pio keeps no such time, so it is empty.",
				"created_at_localtime": "The same time in the node's local time zone; empty.",
				hoursColumn:            "Hours between the experiment's creation and created_at; empty.",
			}, entityColumns),
			ColumnUnits: map[string]string{hoursColumn: "h"}},
		columns: []string{"experiment", "pioreactor_unit", "label", "created_at"},
		rows:    labelRows,
	},
}

// datasetByName returns the built-in dataset of that name.
func datasetByName(name string) (exportable, bool) {
	for _, d := range datasets {
		if d.DatasetName == name {
			return d, true
		}
	}
	return exportable{}, false
}

// datasetNames returns the names of the built-in datasets, in order.
func datasetNames() []string {
	out := make([]string, len(datasets))
	for i, d := range datasets {
		out[i] = d.DatasetName
	}
	return out
}

// Datasets returns the descriptors of the exportable datasets, in
// Pioreactor's order. They are built in: every node has the same.
func Datasets() []Dataset {
	out := make([]Dataset, len(datasets))
	for i, d := range datasets {
		out[i] = d.Dataset
	}
	return out
}

// ErrUnknownDataset is returned by Preview for a name that is not an exportable dataset's.
var ErrUnknownDataset = errors.New("no such exportable dataset")

// errEnough stops a walk of rows that has what it needs.
var errEnough = errors.New("enough rows")

// Preview returns the first n rows of the named dataset's table in f, of
// any experiment (oldest first), without the generated columns of a CSV.
func Preview(f *fsm.FSM, name string, n int) ([]Row, error) {
	d, ok := datasetByName(name)
	if !ok {
		return nil, ErrUnknownDataset
	}
	rows := make([]Row, 0, max(n, 0))
	if n < 1 {
		return rows, nil
	}
	emit := func(row []any) error {
		rows = append(rows, Row{cols: d.columns, vals: append([]any{}, row...)})
		if len(rows) == n {
			return errEnough
		}
		return nil
	}
	exps := []string{""}
	if d.HasExperiment {
		all := f.Experiments()
		sort.SliceStable(all, func(i, j int) bool { return all[i].CreatedAt.Before(all[j].CreatedAt) })
		exps = exps[:0]
		for _, e := range all {
			exps = append(exps, e.Experiment)
		}
	}
	for _, exp := range exps {
		if err := d.rows(f, rowQuery{exp: exp}, emit); err != nil {
			if errors.Is(err, errEnough) {
				break
			}
			return nil, err
		}
	}
	return rows, nil
}

// Row is one row of a dataset's table, as Preview returns it. It encodes
// as a JSON object whose keys are the table's columns, in order.
type Row struct {
	cols []string
	vals []any
}

// MarshalJSON writes the row as an object, times as stored timestamps.
func (r Row) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range r.cols {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(c)
		b.Write(k)
		b.WriteByte(':')
		v := r.vals[i]
		if t, ok := v.(time.Time); ok {
			v = formatUTC(t)
		}
		x, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		b.Write(x)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

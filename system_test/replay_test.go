package system

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The replay of Pioreactor's API: request and answer pairs written from
// Pioreactor's source (core/pioreactor/web/api.py, unit_api.py, structs.py)
// and from what its web UI (frontend/src) sends and reads, kept as data in
// ../api/testdata/pioreactor/*.json. TestReplayPioreactorAPI starts a real
// three-node cluster (alpha, beta, gamma: every one a worker, simulated
// hardware), and replays every file in name order, every case in order,
// through a follower (so every answer also crosses the forwarding to the
// leader). The files are the scenario: earlier cases create what later ones
// read (experiment, assignments, jobs, readings).
//
// How to add a case: append an object to the "cases" of the file of its area
// (or add a file: NN_area.json, NN giving its place in the order):
//
//	{
//	  "name":    "what it shows, unique in its file",
//	  "from":    "where Pioreactor says so, e.g. api.py create_experiment or frontend/src/Inventory.jsx",
//	  "method":  "POST",                       // GET if left out
//	  "path":    "/api/experiments",           // as sent, query included
//	  "body":    {"experiment": "replay"},     // sent as JSON; or
//	  "raw":     "{not json",                  // sent as is (bad input); and
//	  "pad":     {"field": "description", "bytes": 1100000}, // adds a long string field to body (oversize)
//	  "anonymous": true,                       // sent without the API token
//	  "status":  201,                          // Pioreactor's status for it
//	  "shape":   {"experiment": "string", "worker_count": "integer", "tags": ["string"]},
//	  "values":  {"experiment": "replay", "tags.#": 0},
//	  "content_type": "text/plain",            // prefix of the answer's Content-Type
//	  "contains": ["[cluster.topology]"],      // texts the raw answer holds
//	  "eventually": 20,                        // retry up to 20 s until the case holds (no fixed sleeps)
//	  "min_items": 1,                          // the answer (an array or object) has at least this many
//	  "save": {"task": "result_url_path"},     // later cases may use {task}: the value at that path
//	  "known_mismatch": "why pio differs"      // see below
//	}
//
// In path, body, raw, shape, contains and values, {self} is the name of the
// follower the cases are sent to (its own /unit_api answers), {leader} the
// leader's and {third} the other node's; all three are workers. A case's
// "save" names more such values, taken from its answer (a task's
// result_url_path, to poll it as Pioreactor's UI does).
//
// Shapes: a type name ("string", "number", "integer", "boolean", "null",
// "object", "array", "any", or several joined by "|", e.g. "string|null");
// an object of field shapes (every field is required, extra fields in pio's
// answer are allowed; the key "*" gives the shape of every value of a map
// keyed by names, like unit labels); [] for any array, [S] for an array
// whose every element has shape S. Values: a dotted path ("0.job_name",
// "models.0.display_name"; "#" is a length: "tags.#") and the exact JSON
// value found there. An answer of 4xx or 5xx must always be pio's error body
// {"error", "status", "cause", "remediation"} (see api/errors.go).
//
// A case marked known_mismatch documents a difference we keep or have not
// fixed: it is replayed and its difference logged, and the test fails when
// the case passes after all (remove the mark then).

// replayFile is one file of cases.
type replayFile struct {
	About string       `json:"about"`
	Cases []replayCase `json:"cases"`
}

// replayCase is one request and what Pioreactor answers to it.
type replayCase struct {
	Name          string            `json:"name"`
	From          string            `json:"from"`
	Method        string            `json:"method"`
	Path          string            `json:"path"`
	Body          json.RawMessage   `json:"body"`
	Raw           *string           `json:"raw"`
	Pad           *replayPad        `json:"pad"`
	Anonymous     bool              `json:"anonymous"`
	Status        int               `json:"status"`
	Shape         json.RawMessage   `json:"shape"`
	Values        map[string]any    `json:"values"`
	ContentType   string            `json:"content_type"`
	Contains      []string          `json:"contains"`
	Eventually    float64           `json:"eventually"`
	MinItems      int               `json:"min_items"`
	Save          map[string]string `json:"save"`
	KnownMismatch string            `json:"known_mismatch"`
}

// replayPad adds a string field of the given size to a case's body.
type replayPad struct {
	Field string `json:"field"`
	Bytes int    `json:"bytes"`
}

// replayDir holds the cases.
const replayDir = "../api/testdata/pioreactor"

// loadReplay reads every case file, in name order.
func loadReplay(t *testing.T) (names []string, files map[string]replayFile) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(replayDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no replay files in %s: %v", replayDir, err)
	}
	sort.Strings(paths)
	files = map[string]replayFile{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var f replayFile
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		seen := map[string]bool{}
		for i, c := range f.Cases {
			if c.Name == "" || c.Path == "" || c.Status == 0 || seen[c.Name] {
				t.Fatalf("%s: case %d (%q) needs a unique name, a path and a status", p, i, c.Name)
			}
			seen[c.Name] = true
		}
		names = append(names, filepath.Base(p))
		files[filepath.Base(p)] = f
	}
	return names, files
}

func TestReplayPioreactorAPI(t *testing.T) {
	names, files := loadReplay(t)
	nodes := startThree(t)
	f, l := follower(t, nodes), leaderOf(t, nodes)
	vars := map[string]string{"self": f.cfg.Name, "leader": l.cfg.Name, "third": without(without(nodes, f), l)[0].cfg.Name}
	anon := f.anonymous()
	total, mismatches := 0, 0
	for _, name := range names {
		for _, c := range files[name].Cases {
			total++
			c = c.with(replacer(vars))
			hc := f.c.HTTP
			if c.Anonymous {
				hc = anon.HTTP
			}
			where := fmt.Sprintf("%s %q: %s %s", name, c.Name, c.method(), c.Path)
			got, problems := c.replay(t, hc, f.c.Base)
			for name, path := range c.Save {
				if v, ok := valueAt(got, path); ok {
					vars[name] = fmt.Sprint(v)
				} else {
					problems = append(problems, fmt.Sprintf("nothing at %s to save as {%s}", path, name))
				}
			}
			switch {
			case c.KnownMismatch != "" && len(problems) == 0:
				t.Errorf("%s passes now: remove its known_mismatch (%s)", where, c.KnownMismatch)
			case c.KnownMismatch != "":
				mismatches++
				t.Logf("known mismatch, %s (%s): %s", where, c.KnownMismatch, strings.Join(problems, "; "))
			case len(problems) > 0:
				t.Errorf("%s (Pioreactor: %s): %s", where, c.From, strings.Join(problems, "; "))
			}
		}
	}
	t.Logf("%d cases replayed from %d files, %d known mismatches", total, len(names), mismatches)
}

// replacer replaces every {name} of vars by its value.
func replacer(vars map[string]string) *strings.Replacer {
	var pairs []string
	for k, v := range vars {
		pairs = append(pairs, "{"+k+"}", v)
	}
	return strings.NewReplacer(pairs...)
}

// with returns the case with its placeholders replaced.
func (c replayCase) with(vars *strings.Replacer) replayCase {
	c.Path = vars.Replace(c.Path)
	if c.Body != nil {
		c.Body = json.RawMessage(vars.Replace(string(c.Body)))
	}
	if c.Shape != nil {
		c.Shape = json.RawMessage(vars.Replace(string(c.Shape)))
	}
	if c.Raw != nil {
		r := vars.Replace(*c.Raw)
		c.Raw = &r
	}
	contains := make([]string, len(c.Contains))
	for i, s := range c.Contains {
		contains[i] = vars.Replace(s)
	}
	c.Contains = contains
	values := make(map[string]any, len(c.Values))
	for k, v := range c.Values {
		if s, ok := v.(string); ok {
			v = vars.Replace(s)
		}
		values[vars.Replace(k)] = v
	}
	c.Values = values
	return c
}

func (c replayCase) method() string {
	if c.Method == "" {
		return http.MethodGet
	}
	return c.Method
}

// replay sends the case (again until it holds, if it may take time) and
// returns the decoded answer and what differs from Pioreactor's.
func (c replayCase) replay(t *testing.T, hc *http.Client, base string) (any, []string) {
	t.Helper()
	deadline := time.Now().Add(time.Duration(c.Eventually * float64(time.Second)))
	for {
		got, problems := c.once(t, hc, base)
		if len(problems) == 0 || time.Now().After(deadline) {
			return got, problems
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c replayCase) once(t *testing.T, hc *http.Client, base string) (any, []string) {
	t.Helper()
	var body io.Reader
	switch {
	case c.Raw != nil:
		body = strings.NewReader(*c.Raw)
	case c.Body != nil:
		b := []byte(c.Body)
		if c.Pad != nil {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: pad needs an object body: %v", c.Name, err)
			}
			m[c.Pad.Field] = strings.Repeat("x", c.Pad.Bytes)
			b, _ = json.Marshal(m)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(c.method(), base+c.Path, body)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, []string{"no answer: " + err.Error()}
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, []string{"answer cut: " + err.Error()}
	}
	var problems []string
	if resp.StatusCode != c.Status {
		problems = append(problems, fmt.Sprintf("status %d, Pioreactor answers %d (answer %.300s)", resp.StatusCode, c.Status, data))
	}
	if ct := resp.Header.Get("Content-Type"); c.ContentType != "" && !strings.HasPrefix(ct, c.ContentType) {
		problems = append(problems, fmt.Sprintf("Content-Type %q, want %s", ct, c.ContentType))
	}
	for _, s := range c.Contains {
		if !bytes.Contains(data, []byte(s)) {
			problems = append(problems, fmt.Sprintf("the answer lacks %q: %.300s", s, data))
		}
	}
	shape := c.Shape
	if resp.StatusCode >= 400 && shape == nil {
		shape = json.RawMessage(`{"error": "string", "status": "integer", "cause": "string", "remediation": "string"}`)
	}
	if shape == nil && len(c.Values) == 0 && c.MinItems == 0 && len(c.Save) == 0 {
		return nil, problems
	}
	var got any
	if err := json.Unmarshal(data, &got); err != nil {
		return nil, append(problems, fmt.Sprintf("the answer is not JSON: %v: %.300s", err, data))
	}
	if n, ok := valueAt(got, "#"); c.MinItems > 0 && (!ok || n.(float64) < float64(c.MinItems)) {
		problems = append(problems, fmt.Sprintf("the answer has fewer than %d items: %.300s", c.MinItems, data))
	}
	if shape != nil {
		var want any
		if err := json.Unmarshal(shape, &want); err != nil {
			t.Fatalf("%s: bad shape: %v", c.Name, err)
		}
		problems = append(problems, checkShape(want, got, "answer")...)
	}
	keys := make([]string, 0, len(c.Values))
	for k := range c.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := valueAt(got, k)
		if !ok {
			problems = append(problems, fmt.Sprintf("no field %s in %.300s", k, data))
		} else if !jsonEqual(v, c.Values[k]) {
			problems = append(problems, fmt.Sprintf("%s is %v, want %v", k, v, c.Values[k]))
		}
	}
	return got, problems
}

// checkShape compares a decoded JSON value with a shape (see the comment at the top).
func checkShape(shape, got any, at string) []string {
	switch s := shape.(type) {
	case string:
		for _, typ := range strings.Split(s, "|") {
			if hasType(typ, got) {
				return nil
			}
		}
		return []string{fmt.Sprintf("%s is %s, want %s", at, jsonType(got), s)}
	case map[string]any:
		obj, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s is %s, want an object", at, jsonType(got))}
		}
		var out []string
		fields := make([]string, 0, len(s))
		for k := range s {
			fields = append(fields, k)
		}
		sort.Strings(fields)
		for _, k := range fields {
			if k == "*" {
				for name, v := range obj {
					out = append(out, checkShape(s[k], v, at+"."+name)...)
				}
				continue
			}
			v, ok := obj[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s lacks field %q", at, k))
				continue
			}
			out = append(out, checkShape(s[k], v, at+"."+k)...)
		}
		return out
	case []any:
		arr, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s is %s, want an array", at, jsonType(got))}
		}
		if len(s) == 0 {
			return nil
		}
		var out []string
		for i, v := range arr {
			out = append(out, checkShape(s[0], v, at+"."+strconv.Itoa(i))...)
		}
		return out
	}
	return []string{fmt.Sprintf("bad shape %v at %s", shape, at)}
}

// hasType reports whether v is of the JSON type named typ.
func hasType(typ string, v any) bool {
	switch typ {
	case "any":
		return true
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f)
	default:
		return jsonType(v) == typ
	}
}

// jsonType names the JSON type of a decoded value.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// valueAt finds the value at a dotted path; "#" is the length of an array or object.
func valueAt(v any, path string) (any, bool) {
	for _, p := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			if p == "#" {
				v = float64(len(x))
				continue
			}
			var ok bool
			if v, ok = x[p]; !ok {
				return nil, false
			}
		case []any:
			if p == "#" {
				v = float64(len(x))
				continue
			}
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// jsonEqual compares two decoded JSON values.
func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// The shape checker itself: a missing field, a wrong type, a wrong element
// and a wrong value are each found, with the path that names them.
func TestReplayShapeCheck(t *testing.T) {
	var shape, got any
	if err := json.Unmarshal([]byte(`{"a": "string", "b": "integer|null", "c": [{"d": "boolean"}], "m": {"*": "string"}}`), &shape); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(`{"a": "x", "b": null, "c": [{"d": true}], "m": {"u": "v"}, "extra": 1}`), &got); err != nil {
		t.Fatal(err)
	}
	if p := checkShape(shape, got, "answer"); len(p) != 0 {
		t.Fatalf("a matching answer: %v", p)
	}
	if err := json.Unmarshal([]byte(`{"b": 1.5, "c": [{"d": "no"}], "m": {"u": 3}}`), &got); err != nil {
		t.Fatal(err)
	}
	p := strings.Join(checkShape(shape, got, "answer"), "\n")
	for _, want := range []string{`answer lacks field "a"`, "answer.b is number, want integer|null", "answer.c.0.d is string, want boolean", "answer.m.u is number, want string"} {
		if !strings.Contains(p, want) {
			t.Errorf("missing %q in:\n%s", want, p)
		}
	}
	if v, ok := valueAt(got, "c.0.d"); !ok || v != "no" {
		t.Fatalf("valueAt: %v %v", v, ok)
	}
	if v, ok := valueAt(got, "c.#"); !ok || v != float64(1) {
		t.Fatalf("valueAt #: %v %v", v, ok)
	}
}

package profile

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Bounds of one profile.
const (
	// MaxSize is the largest profile, in bytes.
	MaxSize = 256 << 10
	// MaxActions is how many actions one profile may hold, those inside
	// repeat and when included.
	MaxActions = 10000
	// MaxNesting is how deep actions may nest (a when in a when …); the
	// actions of a job are at depth 1.
	MaxNesting = 8
	// MaxErrors is how many errors Parse and Validate report at most.
	MaxErrors = 100
	// maxYAMLDepth bounds the nesting of any YAML value (options, inputs).
	maxYAMLDepth = 64
	// maxNodes bounds the YAML nodes read, aliases expanded.
	maxNodes = 200000
)

// Error is one error of a profile, where it is: Line and Column are 1-based;
// Column is 0 when the YAML parser gives only the line (a syntax error), and
// both are 0 for an error about the profile as a whole.
type Error struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	// Path is the place in the profile as Pioreactor's validator names it
	// (common.jobs.stirring.actions[0].t), "" for none.
	Path string `json:"path,omitempty"`
	// Msg says what is wrong, and starts with the path when there is one.
	Msg string `json:"message"`
}

// Error implements error: "line L, column C: msg".
func (e *Error) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// Errors are all the errors of a profile, in the order of the text (by line,
// then column). Parse and Validate return an Errors (never an empty one)
// when they find any; errors.As finds each *Error in it.
type Errors []*Error

// Error implements error: one error a line.
func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap gives the errors, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sorted() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return es
}

// position is where a part of the profile starts in its text.
type position struct{ line, col int }

// Action types, as Pioreactor tags them.
const (
	TypeLog    = "log"
	TypeStart  = "start"
	TypeUpdate = "update"
	TypeStop   = "stop"
	TypePause  = "pause"
	TypeResume = "resume"
	TypeRepeat = "repeat"
	TypeWhen   = "when"
)

// actionFields are the fields each type of action may have (Pioreactor's
// structs forbid any other).
var actionFields = func() map[string]map[string]bool {
	base := []string{"type", "t", "hours_elapsed", "if"}
	m := map[string][]string{
		TypeLog:    {"options"},
		TypeStart:  {"options", "args", "config_overrides"},
		TypeUpdate: {"options"},
		TypeStop:   nil,
		TypePause:  nil,
		TypeResume: nil,
		TypeRepeat: {"every", "repeat_every_hours", "while", "max_time", "max_hours", "actions"},
		TypeWhen:   {"condition", "wait_until", "actions"},
	}
	out := map[string]map[string]bool{}
	for typ, fs := range m {
		out[typ] = map[string]bool{}
		for _, f := range append(fs, base...) {
			out[typ][f] = true
		}
	}
	return out
}()

var actionTypes = []string{TypeLog, TypeStart, TypeUpdate, TypeStop, TypePause, TypeResume, TypeRepeat, TypeWhen}

// logLevels are the levels a log action may have.
var logLevels = []string{"DEBUG", "debug", "WARNING", "warning", "INFO", "info", "NOTICE", "notice", "ERROR", "error"}

// Parse reads a profile in Pioreactor's YAML format as strictly as
// Pioreactor's structs do: version "1.0" and experiment_profile_name are
// required, unknown fields are refused where Pioreactor refuses them (the
// profile, common, a unit's block, a job, an action), and every field has
// Pioreactor's type. It also takes Pioreactor's older names
// (hours_elapsed, repeat_every_hours, max_hours, condition). On error it
// returns an Errors with every error found (at most MaxErrors), each with
// its line and column; it does not check what Validate does (times, the
// expressions, unit and job names), so a parsed profile must be validated
// before it runs. Plain words YAML 1.1 reads as booleans (yes, no, on, off)
// are booleans, as in Pioreactor (PyYAML); a key given twice is an error.
func Parse(data []byte) (*Profile, error) {
	if len(data) > MaxSize {
		return nil, Errors{{Msg: fmt.Sprintf("the profile is %d bytes long; at most %d are allowed", len(data), MaxSize)}}
	}
	var doc, extra yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := decodeYAML(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{Line: 1, Column: 1, Msg: "the profile is empty"}}
		}
		return nil, Errors{yamlError(err)}
	}
	if err := decodeYAML(dec, &extra); err == nil {
		return nil, Errors{{Line: extra.Line, Column: extra.Column, Msg: "a profile is one YAML document; this is a second"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, Errors{yamlError(err)}
	}
	d := &decoder{pos: map[string]position{}}
	p := d.profile(&doc)
	if len(d.errs) > 0 {
		return nil, d.errs.sorted()
	}
	p.pos = d.pos
	return p, nil
}

// decodeYAML reads the next document, turning a panic of the YAML parser
// (none is known) into an error.
func decodeYAML(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML parser failed: %v", r)
		}
	}()
	return dec.Decode(n)
}

// yamlError makes the YAML parser's error ("yaml: line 3: did not find
// expected key") an *Error.
func yamlError(err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{Msg: "not valid YAML: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				e.Line, e.Msg = n, "not valid YAML: "+strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return e
}

type decoder struct {
	errs     Errors
	pos      map[string]position
	nodes    int
	nActions int
	merges   int  // depth of merge keys being read
	over     bool // a bound was passed: stop reading
}

func (d *decoder) errf(n *yaml.Node, path, format string, args ...any) {
	if len(d.errs) >= MaxErrors {
		if !d.over {
			d.over = true
		}
		return
	}
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	e := &Error{Path: path, Msg: msg}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// fatal records an error after which nothing more is read.
func (d *decoder) fatal(n *yaml.Node, path, format string, args ...any) {
	d.errf(n, path, format, args...)
	d.over = true
}

// deref follows aliases, counting the nodes read.
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	d.nodes++
	if d.nodes > maxNodes && !d.over {
		d.fatal(n, "", "the profile has more than %d YAML values (aliases expanded)", maxNodes)
	}
	return n
}

func (d *decoder) mark(path string, n *yaml.Node) {
	if n != nil {
		d.pos[path] = position{n.Line, n.Column}
	}
}

// kind names a node's kind for errors, as "a number", "a list".
func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch tag(n) {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		case "!!str":
			return "a text"
		}
		return "a " + strings.TrimPrefix(tag(n), "!!")
	}
	return "nothing"
}

// tag is a scalar's type as PyYAML reads it: yaml.v3's, with YAML 1.1's
// booleans (yes, no, on, off, y and n excepted) among plain words.
func tag(n *yaml.Node) string {
	t := n.ShortTag()
	if n.Kind == yaml.ScalarNode && t == "!!str" && n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
		switch n.Value {
		case "yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF":
			return "!!bool"
		}
	}
	return t
}

func boolValue(n *yaml.Node) bool {
	switch strings.ToLower(n.Value) {
	case "true", "yes", "on":
		return true
	}
	return false
}

// pair is a key and its value in a mapping.
type pair struct {
	key, val *yaml.Node
	name     string
}

// fields reads a mapping's pairs (merge keys << applied), refusing a key
// given twice, a key that is not a scalar, and, when allowed is not nil, a
// key it does not hold.
func (d *decoder) fields(n *yaml.Node, path string, allowed func(string) bool, what string) []pair {
	var out []pair
	seen := map[string]bool{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.deref(n.Content[i]), n.Content[i+1]
		if d.over {
			return nil
		}
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "a key must be a word, not %s", kind(k))
			continue
		}
		if tag(k) == "!!merge" {
			merged = append(merged, d.merge(v, path)...)
			continue
		}
		name := k.Value
		if seen[name] {
			d.errf(k, join(path, name), "%s is given twice", name)
			continue
		}
		seen[name] = true
		if allowed != nil && !allowed(name) {
			d.errf(k, join(path, name), "%s has no field %s", what, name)
			continue
		}
		out = append(out, pair{key: k, val: v, name: name})
	}
	for _, p := range merged {
		if !seen[p.name] {
			seen[p.name] = true
			if allowed != nil && !allowed(p.name) {
				d.errf(p.key, join(path, p.name), "%s has no field %s", what, p.name)
				continue
			}
			out = append(out, p)
		}
	}
	return out
}

// merge reads the mappings of a merge key (<<: *a, or <<: [*a, *b]).
func (d *decoder) merge(v *yaml.Node, path string) []pair {
	v = d.deref(v)
	if d.merges >= 8 {
		d.fatal(v, path, "merge keys (<<) nest more than 8 deep")
		return nil
	}
	d.merges++
	defer func() { d.merges-- }()
	var srcs []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode:
		srcs = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, s := range v.Content {
			srcs = append(srcs, d.deref(s))
		}
	}
	var out []pair
	seen := map[string]bool{}
	for _, s := range srcs {
		if s.Kind != yaml.MappingNode {
			d.errf(s, path, "<< merges mappings, not %s", kind(s))
			continue
		}
		for _, p := range d.fields(s, path, nil, "") {
			if !seen[p.name] {
				seen[p.name] = true
				out = append(out, p)
			}
		}
	}
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// mapping checks that n is a mapping; null is refused (Pioreactor's
// fields of these types are not optional).
func (d *decoder) mapping(n *yaml.Node, path, what string) (*yaml.Node, bool) {
	n = d.deref(n)
	if n.Kind != yaml.MappingNode {
		d.errf(n, path, "%s must be a mapping, not %s", what, kind(n))
		return n, false
	}
	return n, true
}

func (d *decoder) str(n *yaml.Node, path string, optional bool) (string, bool) {
	n = d.deref(n)
	if n.Kind == yaml.ScalarNode {
		switch tag(n) {
		case "!!str":
			return n.Value, true
		case "!!null":
			if optional {
				return "", true
			}
		}
	}
	d.errf(n, path, "must be a text, not %s", kind(n))
	return "", false
}

func (d *decoder) number(n *yaml.Node, path string) (float64, bool) {
	n = d.deref(n)
	if n.Kind == yaml.ScalarNode {
		switch tag(n) {
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f, true
			}
		}
	}
	d.errf(n, path, "must be a number, not %s", kind(n))
	return 0, false
}

// optNumber is a float | None field (hours_elapsed, repeat_every_hours,
// max_hours).
func (d *decoder) optNumber(n *yaml.Node, path string) *float64 {
	if dn := d.deref(n); dn.Kind == yaml.ScalarNode && tag(dn) == "!!null" {
		return nil
	}
	f, ok := d.number(n, path)
	if !ok {
		return nil
	}
	return &f
}

// timeValue is a str | float | None field (t, every, max_time): a
// float64, a string or nil.
func (d *decoder) timeValue(n *yaml.Node, path string) any {
	dn := d.deref(n)
	if dn.Kind == yaml.ScalarNode {
		switch tag(dn) {
		case "!!null":
			return nil
		case "!!str":
			return dn.Value
		case "!!int", "!!float":
			f, _ := d.number(dn, path)
			return f
		}
	}
	d.errf(dn, path, "must be a time (hours as a number, or a text such as \"30s\", \"2m\", \"1.5h\", \"2d\"), not %s", kind(dn))
	return nil
}

// boolOrExpr is a bool | str field (if, while).
func (d *decoder) boolOrExpr(n *yaml.Node, path string) any {
	n = d.deref(n)
	if n.Kind == yaml.ScalarNode {
		switch tag(n) {
		case "!!bool":
			return boolValue(n)
		case "!!str":
			return n.Value
		}
	}
	d.errf(n, path, "must be true, false or an expression, not %s", kind(n))
	return nil
}

// value reads any YAML value as Go's JSON decoding would hold it: nil,
// bool, int, float64, string, []any or map[string]any.
func (d *decoder) value(n *yaml.Node, path string, depth int) any {
	n = d.deref(n)
	if d.over {
		return nil
	}
	if depth > maxYAMLDepth {
		d.fatal(n, path, "nests more than %d deep", maxYAMLDepth)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, p := range d.fields(n, path, nil, "") {
			if depth == 1 {
				d.mark(join(path, p.name), d.deref(p.val))
			}
			m[p.name] = d.value(p.val, join(path, p.name), depth+1)
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			l = append(l, d.value(c, fmt.Sprintf("%s[%d]", path, i), depth+1))
		}
		return l
	case yaml.ScalarNode:
		switch tag(n) {
		case "!!null":
			return nil
		case "!!bool":
			return boolValue(n)
		case "!!int":
			var i int
			if err := n.Decode(&i); err == nil {
				return i
			}
			var f float64
			if err := n.Decode(&f); err == nil {
				return f
			}
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
			d.errf(n, path, "%s is not a finite number", n.Value)
			return nil
		case "!!str", "!!timestamp":
			return n.Value
		}
		d.errf(n, path, "%s (%s) is not a value a profile may hold", n.Value, tag(n))
		return nil
	}
	return nil
}

func (d *decoder) object(n *yaml.Node, path, what string) map[string]any {
	n, ok := d.mapping(n, path, what)
	if !ok {
		return nil
	}
	m, _ := d.value(n, path, 1).(map[string]any)
	return m
}

var profileFields = []string{"version", "experiment_profile_name", "metadata", "plugins", "common", "pioreactors", "inputs"}

func (d *decoder) profile(doc *yaml.Node) *Profile {
	p := &Profile{}
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			d.errf(doc, "", "the profile is empty")
			return p
		}
		root = doc.Content[0]
	}
	root, ok := d.mapping(root, "", "a profile")
	if !ok {
		return p
	}
	d.mark("", root)
	has := map[string]bool{}
	for _, f := range d.fields(root, "", func(s string) bool { return slices.Contains(profileFields, s) }, "a profile") {
		has[f.name] = true
		d.mark(f.name, d.deref(f.val))
		switch f.name {
		case "version":
			v := d.deref(f.val)
			if v.Kind != yaml.ScalarNode || tag(v) != "!!str" || v.Value != "1.0" {
				d.errf(v, "version", `must be the text "1.0" (quoted: an unquoted 1.0 is a number), not %s %s`, kind(v), v.Value)
			}
			p.Version = v.Value
		case "experiment_profile_name":
			p.Name, _ = d.str(f.val, f.name, false)
		case "metadata":
			p.Metadata = d.metadata(f.val)
		case "plugins":
			p.Plugins = d.plugins(f.val)
		case "common":
			if n, ok := d.mapping(f.val, "common", "common"); ok {
				p.Common = d.block(n, "common", false)
			}
		case "pioreactors":
			p.Units = d.units(f.val)
		case "inputs":
			p.Inputs = d.object(f.val, "inputs", "inputs")
		}
	}
	if !has["version"] && !d.over {
		d.errf(root, "version", `required, and missing: a profile from before Pioreactor 26.7 takes version: "1.0" as its first line`)
	}
	if !has["experiment_profile_name"] && !d.over {
		d.errf(root, "experiment_profile_name", "required, and missing")
	}
	return p
}

func (d *decoder) metadata(n *yaml.Node) Metadata {
	var m Metadata
	n, ok := d.mapping(n, "metadata", "metadata")
	if !ok {
		return m
	}
	for _, f := range d.fields(n, "metadata", nil, "") {
		switch f.name {
		case "author":
			m.Author, _ = d.str(f.val, "metadata.author", true)
		case "description":
			m.Description, _ = d.str(f.val, "metadata.description", true)
		}
	}
	return m
}

func (d *decoder) plugins(n *yaml.Node) []Plugin {
	n = d.deref(n)
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "plugins", "must be a list, not %s", kind(n))
		return nil
	}
	var out []Plugin
	for i, c := range n.Content {
		path := fmt.Sprintf("plugins[%d]", i)
		c, ok := d.mapping(c, path, "a plugin")
		if !ok {
			continue
		}
		d.mark(path, c)
		var pl Plugin
		has := map[string]bool{}
		for _, f := range d.fields(c, path, nil, "") {
			switch f.name {
			case "name":
				pl.Name, _ = d.str(f.val, path+".name", false)
				has[f.name] = true
			case "version":
				pl.Version, _ = d.str(f.val, path+".version", false)
				has[f.name] = true
			}
		}
		if !has["name"] || !has["version"] {
			d.errf(c, path, "a plugin has a name and a version")
		}
		out = append(out, pl)
	}
	return out
}

func (d *decoder) units(n *yaml.Node) map[string]Block {
	n, ok := d.mapping(n, "pioreactors", "pioreactors")
	if !ok {
		return nil
	}
	out := map[string]Block{}
	for _, f := range d.fields(n, "pioreactors", nil, "") {
		path := "pioreactors." + f.name
		d.pos[path+"#key"] = position{f.key.Line, f.key.Column}
		v, ok := d.mapping(f.val, path, "a unit's block")
		if !ok {
			continue
		}
		out[f.name] = d.block(v, path, true)
	}
	return out
}

// block reads common (label not allowed) or a unit's block.
func (d *decoder) block(n *yaml.Node, path string, unit bool) Block {
	var b Block
	d.mark(path, n)
	allowed := func(s string) bool { return s == "jobs" || unit && s == "label" }
	what := "common"
	if unit {
		what = "a unit's block"
	}
	for _, f := range d.fields(n, path, allowed, what) {
		switch f.name {
		case "label":
			b.Label, _ = d.str(f.val, path+".label", true)
		case "jobs":
			b.Jobs = d.jobs(f.val, path+".jobs")
		}
	}
	return b
}

func (d *decoder) jobs(n *yaml.Node, path string) map[string]Job {
	n, ok := d.mapping(n, path, "jobs")
	if !ok {
		return nil
	}
	out := map[string]Job{}
	for _, f := range d.fields(n, path, nil, "") {
		jp := path + "." + f.name
		d.pos[jp+"#key"] = position{f.key.Line, f.key.Column}
		v, ok := d.mapping(f.val, jp, "a job")
		if !ok {
			continue
		}
		d.mark(jp, v)
		var j Job
		has := false
		for _, jf := range d.fields(v, jp, func(s string) bool { return s == "actions" || s == "description" }, "a job") {
			switch jf.name {
			case "description":
				j.Description, _ = d.str(jf.val, jp+".description", true)
			case "actions":
				has = true
				j.Actions = d.actions(jf.val, jp+".actions", 1)
			}
		}
		if !has && !d.over {
			d.errf(v, jp, "a job must have actions")
		}
		out[f.name] = j
	}
	return out
}

func (d *decoder) actions(n *yaml.Node, path string, depth int) []Action {
	n = d.deref(n)
	if n.Kind != yaml.SequenceNode {
		d.errf(n, path, "must be a list of actions, not %s", kind(n))
		return nil
	}
	if depth > MaxNesting {
		d.fatal(n, path, "actions nest more than %d deep", MaxNesting)
		return nil
	}
	out := make([]Action, 0, len(n.Content))
	for i, c := range n.Content {
		if d.over {
			return nil
		}
		d.nActions++
		if d.nActions > MaxActions {
			d.fatal(c, path, "the profile has more than %d actions", MaxActions)
			return nil
		}
		out = append(out, d.action(c, fmt.Sprintf("%s[%d]", path, i), depth))
	}
	return out
}

func (d *decoder) action(n *yaml.Node, path string, depth int) Action {
	var a Action
	n, ok := d.mapping(n, path, "an action")
	if !ok {
		return a
	}
	d.mark(path, n)
	all := d.fields(n, path, nil, "")
	for _, f := range all {
		if f.name == "type" {
			v := d.deref(f.val)
			d.mark(path+".type", v)
			if v.Kind != yaml.ScalarNode || tag(v) != "!!str" || !slices.Contains(actionTypes, v.Value) {
				hint := ""
				if v.Kind == yaml.ScalarNode && slices.Contains(actionTypes, strings.ToLower(v.Value)) {
					hint = " (in lower case)"
				}
				d.errf(v, path+".type", "%q is not an action type: one of %s%s", v.Value, strings.Join(actionTypes, ", "), hint)
				return a
			}
			a.Type = v.Value
		}
	}
	if a.Type == "" {
		d.errf(n, path, "an action must have a type: one of %s", strings.Join(actionTypes, ", "))
		return a
	}
	for _, f := range all {
		fp := path + "." + f.name
		if !actionFields[a.Type][f.name] {
			d.errf(f.key, fp, "a %s action has no field %s", a.Type, f.name)
			continue
		}
		d.mark(fp, d.deref(f.val))
		switch f.name {
		case "t":
			a.T = d.timeValue(f.val, fp)
		case "hours_elapsed":
			a.HoursElapsed = d.optNumber(f.val, fp)
		case "if":
			a.If = d.boolOrExpr(f.val, fp)
		case "options":
			if a.Type == TypeLog {
				a.Options = d.logOptions(f.val, fp)
			} else {
				a.Options = d.object(f.val, fp, "options")
			}
		case "args":
			a.Args = d.args(f.val, fp)
		case "config_overrides":
			a.ConfigOverrides = d.object(f.val, fp, "config_overrides")
		case "every", "max_time":
			v := d.timeValue(f.val, fp)
			if f.name == "every" {
				a.Every = v
			} else {
				a.MaxTime = v
			}
		case "repeat_every_hours":
			a.RepeatEveryHours = d.optNumber(f.val, fp)
		case "max_hours":
			a.MaxHours = d.optNumber(f.val, fp)
		case "while":
			a.While = d.boolOrExpr(f.val, fp)
		case "wait_until", "condition":
			// Pioreactor's are texts; pio takes true and false too.
			var s string
			if v := d.deref(f.val); v.Kind == yaml.ScalarNode && tag(v) == "!!bool" {
				s = strconv.FormatBool(boolValue(v))
			} else {
				s, _ = d.str(v, fp, false)
			}
			if f.name == "wait_until" {
				a.WaitUntil = s
			} else {
				a.Condition = s
			}
		case "actions":
			a.Actions = d.actions(f.val, fp, depth+1)
		}
	}
	if a.Type == TypeLog && a.Options == nil && !d.over {
		d.errf(n, path+".options", "a log action must have options with its message")
	}
	return a
}

// logOptions reads a log action's options: message (required) and level.
func (d *decoder) logOptions(n *yaml.Node, path string) map[string]any {
	n, ok := d.mapping(n, path, "options")
	if !ok {
		return map[string]any{}
	}
	out := map[string]any{}
	for _, f := range d.fields(n, path, nil, "") {
		switch f.name {
		case "message":
			if s, ok := d.str(f.val, path+".message", false); ok {
				out["message"] = s
			}
			d.mark(path+".message", d.deref(f.val))
		case "level":
			if s, ok := d.str(f.val, path+".level", false); ok {
				if !slices.Contains(logLevels, s) {
					d.errf(d.deref(f.val), path+".level", "%q is not a level: one of debug, info, notice, warning, error (lower or upper case)", s)
				}
				out["level"] = s
			}
		}
	}
	if _, ok := out["message"]; !ok && !d.over {
		d.errf(n, path, "a log action's options must have a message")
	}
	return out
}

func (d *decoder) args(n *yaml.Node, path string) []string {
	n = d.deref(n)
	if n.Kind != yaml.SequenceNode {
		d.errf(n, path, "must be a list of texts, not %s", kind(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		if s, ok := d.str(c, fmt.Sprintf("%s[%d]", path, i), false); ok {
			out = append(out, s)
		}
	}
	return out
}

package profile

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// The expressions of a profile are Pioreactor's (its experiment_profiles
// parser.py): numbers, bare words, true and false (in any case), and, or,
// not, the comparisons < <= == >= >, + - * / and ** (exponent), parentheses,
// the functions random(), unit(), hours_elapsed(), experiment() and
// job_name(), and references to a job's published setting:
// unit:job:setting, ::job:setting (the unit of the action), and
// unit():job:setting, with nested keys of a JSON setting after dots
// (pio1:od_reading:ods.od). A bare word is the value of a variable of that
// name (the profile's inputs, and unit, experiment, job_name,
// hours_elapsed), or else the word itself as a string: Pioreactor has no
// quoted strings, so state == ready compares with the text "ready".
// Numbers are float64, as in Pioreactor; and and or give one of their
// operands, as in Python.
//
// Where pio differs, on purpose:
//   - A unary minus binds as in arithmetic (-2 * 3 + 1 is -5); Pioreactor's
//     grammar gives it a lower precedence than + and -, so that it reads
//     -(2*3+1) = -7.
//   - Comparisons never chain: a >= b >= c is refused (Pioreactor refuses
//     a < b < c and a == b == c, and reads a >= (b >= c)).
//   - A reference's unit may hold '-' (pio's unit names may):
//     pio-1:stirring:target_rpm. In Pioreactor that reads pio - (1:…), an
//     error.
//   - A reference with more than unit, job and setting (a:b:c:d) and an
//     unknown function are refused when the expression is parsed; Pioreactor
//     refuses them only when it evaluates them.
//   - White space of any kind separates tokens (Pioreactor: spaces and tabs).

// Bounds of one expression.
const (
	// MaxExprLen is the longest expression, in bytes.
	MaxExprLen = 2048
	// MaxExprDepth is the deepest nesting of an expression (parentheses,
	// unary operators, the right side of **).
	MaxExprDepth = 64
	// maxSettingLen bounds a setting's published value that Eval decodes as JSON.
	maxSettingLen = 1 << 20
)

// EnvVars is what an Env may also implement: the variables of Pioreactor's
// expression environment, by name. Those are the profile's inputs and, set
// by the runner for each action, "unit" (the unit the action acts on),
// "experiment", "job_name" and "hours_elapsed" (hours since the run
// started, a float64). unit(), experiment(), job_name() and hours_elapsed()
// read them, and so does ::job:setting (the unit). An Env that does not
// implement EnvVars has none.
type EnvVars interface {
	// Var is the variable's value, if the environment has it.
	Var(name string) (any, bool)
}

// MapEnv is an Env of fixed values, for tests, dry runs and validation.
type MapEnv struct {
	// Vars are the variables (see EnvVars).
	Vars map[string]any
	// Settings are the published settings, by "unit:job:setting".
	Settings map[string]any
}

// Setting implements Env.
func (m MapEnv) Setting(unit, job, setting string) (any, bool) {
	v, ok := m.Settings[unit+":"+job+":"+setting]
	return v, ok
}

// Var implements EnvVars.
func (m MapEnv) Var(name string) (any, bool) {
	v, ok := m.Vars[name]
	return v, ok
}

// WithVars returns env with vars added: its Var looks in vars first, then
// in env's own (if env implements EnvVars). env may be nil.
func WithVars(env Env, vars map[string]any) Env {
	return boundEnv{env: env, vars: vars}
}

type boundEnv struct {
	env  Env
	vars map[string]any
}

func (b boundEnv) Setting(unit, job, setting string) (any, bool) {
	if b.env == nil {
		return nil, false
	}
	return b.env.Setting(unit, job, setting)
}

func (b boundEnv) Var(name string) (any, bool) {
	if v, ok := b.vars[name]; ok {
		return v, true
	}
	if ev, ok := b.env.(EnvVars); ok {
		return ev.Var(name)
	}
	return nil, false
}

// ParseExpr reports whether expr is a valid expression, with or without its
// ${{ ... }} wrapper, without evaluating anything.
func ParseExpr(expr string) error {
	_, err := compile(expr)
	return err
}

// Eval evaluates expr (with or without its ${{ ... }} wrapper) in env
// (which may be nil when expr reads no setting and no variable). The value
// is a float64, a bool, a string, or what a nested setting holds (a
// map[string]any or []any).
func Eval(expr string, env Env) (any, error) {
	n, err := compile(expr)
	if err != nil {
		return nil, err
	}
	return n.eval(env)
}

// EvalBool is the truth of a condition (if, while, wait_until): v is a bool
// or an expression, whose value is true as in Python (a non-zero number, a
// non-empty text, true).
func EvalBool(v any, env Env) (bool, error) {
	switch x := v.(type) {
	case nil:
		return true, nil
	case bool:
		return x, nil
	case string:
		r, err := Eval(x, env)
		if err != nil {
			return false, err
		}
		return truthy(r), nil
	default:
		return false, fmt.Errorf("a condition is true, false or an expression, not %T", v)
	}
}

// EvalOptions returns options with each value that is a whole ${{ ... }}
// expression replaced by its value, as Pioreactor does for the options of
// start and update and for config_overrides.
func EvalOptions(options map[string]any, env Env) (map[string]any, error) {
	if options == nil {
		return nil, nil
	}
	out := make(map[string]any, len(options))
	for k, v := range options {
		s, ok := v.(string)
		if inner, wrapped := unwrap(s); ok && wrapped {
			r, err := Eval(inner, env)
			if err != nil {
				return nil, fmt.Errorf("option %s: %w", k, err)
			}
			out[k] = r
			continue
		}
		out[k] = v
	}
	return out, nil
}

// ExpandMessage returns a log action's message with every ${{ ... }} in it
// replaced by its value, written as Python writes it (1.0, True).
func ExpandMessage(msg string, env Env) (string, error) {
	var b strings.Builder
	for {
		inner, before, after, ok := nextExpr(msg)
		if !ok {
			b.WriteString(msg)
			return b.String(), nil
		}
		v, err := Eval(inner, env)
		if err != nil {
			return "", err
		}
		b.WriteString(before)
		b.WriteString(pyStr(v))
		msg = after
	}
}

// embeddedExprs are the ${{ ... }} of a text (Pioreactor's flexible pattern).
func embeddedExprs(s string) []string {
	var out []string
	for {
		inner, _, after, ok := nextExpr(s)
		if !ok {
			return out
		}
		out = append(out, inner)
		s = after
	}
}

// nextExpr finds the first ${{ ... }} of s with no line break inside, as
// Python's re.search(r"\${{(.*?)}}") does.
func nextExpr(s string) (inner, before, after string, ok bool) {
	from := 0
	for {
		i := strings.Index(s[from:], "${{")
		if i < 0 {
			return "", "", "", false
		}
		i += from
		rest := s[i+3:]
		j := strings.Index(rest, "}}")
		if nl := strings.IndexByte(rest, '\n'); j >= 0 && (nl < 0 || nl > j) {
			return rest[:j], s[:i], rest[j+2:], true
		}
		from = i + 1
	}
}

// unwrap strips the ${{ }} of a text that is one whole expression (Python's
// re.search(r"^\${{(.*?)}}$")).
func unwrap(s string) (string, bool) {
	t := strings.TrimSuffix(s, "\n")
	if !strings.HasPrefix(t, "${{") || !strings.HasSuffix(t, "}}") || len(t) < 5 {
		return s, false
	}
	inner := t[3 : len(t)-2]
	if strings.ContainsRune(inner, '\n') {
		return s, false
	}
	return inner, true
}

func compile(expr string) (node, error) {
	if len(expr) > MaxExprLen {
		return nil, fmt.Errorf("the expression is %d bytes long; at most %d are allowed", len(expr), MaxExprLen)
	}
	if inner, ok := unwrap(expr); ok {
		expr = inner
	}
	if i := strings.IndexAny(expr, `"'`); i >= 0 {
		return nil, fmt.Errorf("quoted texts are not supported in profile expressions (found %c at character %d): write the bare word, as in state == ready", expr[i], i+1)
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &exprParser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpected(t)
	}
	return n, nil
}

// Tokens.

type tokKind int

const (
	tEOF tokKind = iota
	tNum
	tName
	tFunc
	tRef
	tOp
	tLParen
	tRParen
	tAnd
	tOr
	tNot
)

type token struct {
	kind tokKind
	text string
	pos  int // 1-based byte offset in the expression
	num  float64
	ref  *ref
}

// ref is unit:job:setting.keys; unit "" is the action's unit (:: or unit()),
// job "" is the action's job (job_name()).
type ref struct {
	unit, job, setting string
	keys               []string
	text               string
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '$'
}

func isIdentPart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= '0' && c <= '9'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// ident is the length of the identifier at s[i:] ([A-Za-z_$][A-Za-z0-9_]*), or 0.
func ident(s string, i int) int {
	if i >= len(s) || !isIdentStart(s[i]) {
		return 0
	}
	j := i + 1
	for j < len(s) && isIdentPart(s[j]) {
		j++
	}
	return j - i
}

var functions = map[string]bool{"random()": true, "unit()": true, "hours_elapsed()": true, "experiment()": true, "job_name()": true}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == ':' || isIdentStart(c) || isDigit(c):
			if r, n, err := scanRef(s, i); err != nil {
				return nil, err
			} else if n > 0 {
				toks = append(toks, token{kind: tRef, text: s[i : i+n], pos: i + 1, ref: r})
				i += n
				continue
			}
		}
		switch {
		case isIdentStart(c):
			n := ident(s, i)
			w := s[i : i+n]
			if strings.HasPrefix(s[i+n:], "()") {
				if !functions[w+"()"] {
					return nil, fmt.Errorf("%s() at character %d is not a function of profile expressions: they have random(), unit(), hours_elapsed(), experiment() and job_name()", w, i+1)
				}
				toks = append(toks, token{kind: tFunc, text: w + "()", pos: i + 1})
				i += n + 2
				continue
			}
			k := tName
			switch w {
			case "and":
				k = tAnd
			case "or":
				k = tOr
			case "not":
				k = tNot
			}
			toks = append(toks, token{kind: k, text: w, pos: i + 1})
			i += n
		case isDigit(c) || c == '.':
			j := i
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j < len(s) && s[j] == '.' {
				if j+1 >= len(s) || !isDigit(s[j+1]) {
					return nil, fmt.Errorf("illegal character '.' at character %d: a number is written 2, 2.5 or .5", j+1)
				}
				j++
				for j < len(s) && isDigit(s[j]) {
					j++
				}
			}
			f, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil || math.IsInf(f, 0) {
				return nil, fmt.Errorf("%q at character %d is not a number", s[i:j], i+1)
			}
			toks = append(toks, token{kind: tNum, text: s[i:j], pos: i + 1, num: f})
			i = j
		case c == '(':
			toks = append(toks, token{kind: tLParen, text: "(", pos: i + 1})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, text: ")", pos: i + 1})
			i++
		default:
			op := ""
			for _, o := range []string{"**", "<=", ">=", "==", "+", "-", "*", "/", "<", ">"} {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				hint := ""
				if strings.HasPrefix(s[i:], "!=") {
					hint = " (profile expressions have no !=: write not a == b)"
				}
				return nil, fmt.Errorf("illegal character %q at character %d%s", rune(c), i+1, hint)
			}
			toks = append(toks, token{kind: tOp, text: op, pos: i + 1})
			i += len(op)
		}
	}
	return append(toks, token{kind: tEOF, pos: len(s) + 1}), nil
}

// scanRef reads unit:job:setting(.key)* or ::job:setting(.key)* at s[i:].
// It returns n = 0 when there is none there (the text is then read as other
// tokens), and an error when there is one that is malformed.
func scanRef(s string, i int) (*ref, int, error) {
	r := &ref{}
	j := i
	if strings.HasPrefix(s[i:], "::") {
		j += 2
	} else {
		// The unit: unit(), or letters, digits, '_', '$' and '-' (pio's unit names).
		k := j
		for k < len(s) && (isIdentPart(s[k]) || s[k] == '$' || s[k] == '-') {
			k++
		}
		u := s[j:k]
		if strings.HasPrefix(s[k:], "()") {
			if u != "unit" {
				return nil, 0, nil
			}
			u, k = "", k+2
		} else if u == "" {
			return nil, 0, nil
		}
		if k >= len(s) || s[k] != ':' {
			return nil, 0, nil
		}
		r.unit, j = u, k+1
	}
	// The job: an identifier or job_name().
	n := ident(s, j)
	if n == 0 {
		if s[i] == ':' {
			return nil, 0, fmt.Errorf("%q at character %d: after :: comes job:setting", excerpt(s[i:]), i+1)
		}
		return nil, 0, nil
	}
	job := s[j : j+n]
	j += n
	if strings.HasPrefix(s[j:], "()") {
		if job != "job_name" || s[i] == ':' {
			return nil, 0, fmt.Errorf("%q at character %d is not a reference unit:job:setting", excerpt(s[i:]), i+1)
		}
		job, j = "", j+2
	}
	if j >= len(s) || s[j] != ':' {
		if s[i] == ':' {
			return nil, 0, fmt.Errorf("%q at character %d: after :: comes job:setting", excerpt(s[i:]), i+1)
		}
		return nil, 0, nil
	}
	r.job = job
	j++
	// The setting and its nested keys.
	for first := true; ; first = false {
		n := ident(s, j)
		if n == 0 {
			return nil, 0, fmt.Errorf("%q at character %d is not a reference unit:job:setting (with .key for a nested value)", excerpt(s[i:]), i+1)
		}
		if first {
			r.setting = s[j : j+n]
		} else {
			r.keys = append(r.keys, s[j:j+n])
		}
		j += n
		if j < len(s) && s[j] == '.' {
			j++
			continue
		}
		break
	}
	if j < len(s) && (s[j] == ':' || s[j] == '(') {
		return nil, 0, fmt.Errorf("%q at character %d is not a reference unit:job:setting", excerpt(s[i:]), i+1)
	}
	r.text = s[i:j]
	return r, j - i, nil
}

func excerpt(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// The parser: precedence climbing, from the loosest: or, and, not,
// comparisons (not chained), + -, * /, unary + -, **.

type exprParser struct {
	toks  []token
	i     int
	depth int
}

func (p *exprParser) peek() token { return p.toks[p.i] }

func (p *exprParser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *exprParser) unexpected(t token) error {
	if t.kind == tEOF {
		return errors.New("the expression ends too soon")
	}
	return fmt.Errorf("unexpected %q at character %d", t.text, t.pos)
}

func (p *exprParser) enter() error {
	p.depth++
	if p.depth > MaxExprDepth {
		return fmt.Errorf("the expression nests more than %d deep", MaxExprDepth)
	}
	return nil
}

func (p *exprParser) or() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tOr {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &logic{or: true, l: l, r: r}
	}
	return l, nil
}

func (p *exprParser) and() (node, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.peek().kind == tAnd {
		p.next()
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = &logic{l: l, r: r}
	}
	return l, nil
}

func (p *exprParser) not() (node, error) {
	if p.peek().kind == tNot {
		p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		x, err := p.not()
		p.depth--
		if err != nil {
			return nil, err
		}
		return &notNode{x: x}, nil
	}
	return p.cmp()
}

func isCmp(t token) bool {
	if t.kind != tOp {
		return false
	}
	switch t.text {
	case "<", "<=", "==", ">=", ">":
		return true
	}
	return false
}

func (p *exprParser) cmp() (node, error) {
	l, err := p.arith()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); isCmp(t) {
		p.next()
		r, err := p.arith()
		if err != nil {
			return nil, err
		}
		if t2 := p.peek(); isCmp(t2) {
			return nil, fmt.Errorf("comparisons do not chain (%q at character %d): join them with and", t2.text, t2.pos)
		}
		return &binary{op: t.text, l: l, r: r}, nil
	}
	return l, nil
}

func (p *exprParser) arith() (node, error) {
	l, err := p.term()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tOp && (t.text == "+" || t.text == "-"); t = p.peek() {
		p.next()
		r, err := p.term()
		if err != nil {
			return nil, err
		}
		l = &binary{op: t.text, l: l, r: r}
	}
	return l, nil
}

func (p *exprParser) term() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == tOp && (t.text == "*" || t.text == "/"); t = p.peek() {
		p.next()
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &binary{op: t.text, l: l, r: r}
	}
	return l, nil
}

func (p *exprParser) unary() (node, error) {
	t := p.peek()
	switch {
	case t.kind == tOp && (t.text == "-" || t.text == "+"):
		p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		x, err := p.unary()
		p.depth--
		if err != nil {
			return nil, err
		}
		return &neg{minus: t.text == "-", x: x}, nil
	case t.kind == tNot:
		// Pioreactor's grammar lets not stand where an operand does (1 + not 0).
		return p.not()
	}
	return p.power()
}

func (p *exprParser) power() (node, error) {
	l, err := p.atom()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind == tOp && t.text == "**" {
		p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		r, err := p.unary()
		p.depth--
		if err != nil {
			return nil, err
		}
		return &binary{op: "**", l: l, r: r}, nil
	}
	return l, nil
}

func (p *exprParser) atom() (node, error) {
	t := p.next()
	switch t.kind {
	case tNum:
		return lit{v: t.num}, nil
	case tName:
		switch strings.ToLower(t.text) {
		case "true":
			return lit{v: true}, nil
		case "false":
			return lit{v: false}, nil
		}
		return name(t.text), nil
	case tFunc:
		return fn(t.text), nil
	case tRef:
		return (*refNode)(t.ref), nil
	case tLParen:
		if err := p.enter(); err != nil {
			return nil, err
		}
		x, err := p.or()
		p.depth--
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			if c.kind == tEOF {
				return nil, fmt.Errorf("the ( at character %d is not closed", t.pos)
			}
			return nil, p.unexpected(c)
		}
		return x, nil
	}
	return nil, p.unexpected(t)
}

// The tree and its evaluation.

type node interface {
	eval(env Env) (any, error)
}

type lit struct{ v any }

func (l lit) eval(Env) (any, error) { return l.v, nil }

type name string

func (n name) eval(env Env) (any, error) {
	if ev, ok := env.(EnvVars); ok {
		if v, ok := ev.Var(string(n)); ok {
			return numeric(v), nil
		}
	}
	return string(n), nil
}

type fn string

func (f fn) eval(env Env) (any, error) {
	if f == "random()" {
		return rand.Float64(), nil
	}
	v := strings.TrimSuffix(string(f), "()")
	if ev, ok := env.(EnvVars); ok {
		if x, ok := ev.Var(v); ok {
			return numeric(x), nil
		}
	}
	return nil, fmt.Errorf("%s has no value here", f)
}

func envVar(env Env, name string) (string, bool) {
	ev, ok := env.(EnvVars)
	if !ok {
		return "", false
	}
	v, ok := ev.Var(name)
	s, isStr := v.(string)
	return s, ok && isStr && s != ""
}

type refNode ref

func (r *refNode) eval(env Env) (any, error) {
	unit, job := r.unit, r.job
	if unit == "" {
		u, ok := envVar(env, "unit")
		if !ok {
			return nil, fmt.Errorf("%s: there is no unit here to read it from", r.text)
		}
		unit = u
	}
	if job == "" {
		j, ok := envVar(env, "job_name")
		if !ok {
			return nil, fmt.Errorf("%s: there is no job here", r.text)
		}
		job = j
	}
	if env == nil {
		return nil, fmt.Errorf("%s:%s:%s does not exist here", unit, job, r.setting)
	}
	v, ok := env.Setting(unit, job, r.setting)
	if !ok {
		return nil, fmt.Errorf("%s:%s:%s does not exist", unit, job, r.setting)
	}
	v = decodeSetting(v)
	for _, k := range r.keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: the key %s is looked up in a value that is not a mapping (%s)", r.text, k, pyType(v))
		}
		if v, ok = m[k]; !ok {
			return nil, fmt.Errorf("%s: the value has no key %s", r.text, k)
		}
	}
	return normalize(v), nil
}

// decodeSetting reads a published value as Pioreactor does: a text (or
// bytes) is decoded as JSON, and if it is not JSON it stays a text.
func decodeSetting(v any) any {
	var s string
	switch x := v.(type) {
	case []byte:
		s = string(x)
	case string:
		s = x
	case json.RawMessage:
		s = string(x)
	default:
		return v
	}
	if len(s) <= maxSettingLen {
		var d any
		if err := json.Unmarshal([]byte(s), &d); err == nil {
			return d
		}
	}
	return s
}

// normalize makes a setting's value one of the expressions' types: numbers
// are float64, and a text that is a number or true/false becomes one
// (Pioreactor's convert_string).
func normalize(v any) any {
	if x, ok := v.(string); ok {
		t := strings.TrimSpace(x)
		if f, err := strconv.ParseFloat(t, 64); err == nil && t != "" && !strings.ContainsAny(t, "xXpP") {
			return f
		}
		switch strings.ToLower(x) {
		case "true":
			return true
		case "false":
			return false
		}
		return x
	}
	return numeric(v)
}

// numeric makes a number of any Go type a float64 (a variable's value is
// otherwise taken as it is, as Pioreactor does).
func numeric(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int8:
		return float64(x)
	case int16:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case uint:
		return float64(x)
	case uint8:
		return float64(x)
	case uint16:
		return float64(x)
	case uint32:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	}
	return v
}

type notNode struct{ x node }

func (n *notNode) eval(env Env) (any, error) {
	v, err := n.x.eval(env)
	if err != nil {
		return nil, err
	}
	return !truthy(v), nil
}

type logic struct {
	or   bool
	l, r node
}

func (n *logic) eval(env Env) (any, error) {
	l, err := n.l.eval(env)
	if err != nil {
		return nil, err
	}
	if truthy(l) == n.or {
		return l, nil
	}
	return n.r.eval(env)
}

type neg struct {
	minus bool
	x     node
}

func (n *neg) eval(env Env) (any, error) {
	v, err := n.x.eval(env)
	if err != nil {
		return nil, err
	}
	f, ok := number(v)
	if !ok {
		return nil, fmt.Errorf("bad operand type for unary %s: %s", map[bool]string{true: "-", false: "+"}[n.minus], pyType(v))
	}
	if n.minus {
		return -f, nil
	}
	return f, nil
}

type binary struct {
	op   string
	l, r node
}

func (n *binary) eval(env Env) (any, error) {
	l, err := n.l.eval(env)
	if err != nil {
		return nil, err
	}
	r, err := n.r.eval(env)
	if err != nil {
		return nil, err
	}
	if n.op == "==" {
		return equal(l, r), nil
	}
	if ls, ok := l.(string); ok {
		if rs, ok := r.(string); ok {
			switch n.op {
			case "+":
				if len(ls)+len(rs) > MaxExprLen*16 {
					return nil, errors.New("the text is too long")
				}
				return ls + rs, nil
			case "<":
				return ls < rs, nil
			case "<=":
				return ls <= rs, nil
			case ">":
				return ls > rs, nil
			case ">=":
				return ls >= rs, nil
			}
		}
	}
	a, okA := number(l)
	b, okB := number(r)
	if !okA || !okB {
		return nil, fmt.Errorf("%q is not supported between %s and %s", n.op, pyType(l), pyType(r))
	}
	var f float64
	switch n.op {
	case "<":
		return a < b, nil
	case "<=":
		return a <= b, nil
	case ">":
		return a > b, nil
	case ">=":
		return a >= b, nil
	case "+":
		f = a + b
	case "-":
		f = a - b
	case "*":
		f = a * b
	case "/":
		if b == 0 {
			return nil, errors.New("division by zero is not allowed")
		}
		f = a / b
	case "**":
		if a == 0 && b < 0 {
			return nil, errors.New("0 cannot be raised to a negative power")
		}
		if a < 0 && b != math.Trunc(b) {
			return nil, errors.New("a negative number cannot be raised to a fractional power")
		}
		f = math.Pow(a, b)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("%s overflows", n.op)
	}
	return f, nil
}

// number is v as a number, as Python uses it in arithmetic (a bool is 0 or 1).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func equal(l, r any) bool {
	a, okA := number(l)
	b, okB := number(r)
	if okA && okB {
		return a == b
	}
	ls, okA := l.(string)
	rs, okB := r.(string)
	if okA && okB {
		return ls == rs
	}
	if l == nil || r == nil {
		return l == nil && r == nil
	}
	if okA || okB {
		return false
	}
	lj, err1 := json.Marshal(l)
	rj, err2 := json.Marshal(r)
	return err1 == nil && err2 == nil && string(lj) == string(rj)
}

// truthy is Python's truth of a value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	case map[string]any:
		return len(x) > 0
	case []any:
		return len(x) > 0
	}
	return true
}

func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case float64:
		return "float"
	case string:
		return "str"
	case map[string]any:
		return "dict"
	case []any:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}

// pyStr writes v as Python's str() does.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case float64:
		return pyFloat(x)
	case string:
		return x
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// pyFloat is Python's repr of a float: the shortest digits, fixed between
// 1e-4 and 1e16, with ".0" on a whole number.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	if a := math.Abs(f); a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.FormatFloat(f, 'e', -1, 64)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

package fsm

import (
	"fmt"
	"net"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The rules of names and request IDs live here, in the state machine, so that
// the API (every route) and Apply (every command, whoever proposes it) check
// them the same way.

// UniversalExperiment is Pioreactor's experiment name for what belongs to no
// experiment (the log line of a press on the HAT's button, for one). It is
// never a valid name to create.
const UniversalExperiment = "$experiment"

// Broadcast is Pioreactor's unit name for "every unit the route allows"; it is
// never a valid name for a unit.
const Broadcast = "$broadcast"

// MaxExperimentNameLen is the longest experiment name, in characters (as in Pioreactor).
const MaxExperimentNameLen = 199

// MaxRequestIDLen is the longest request ID (X-Request-Id) a command may carry.
const MaxRequestIDLen = 128

// onlyOf reports whether s is made only of ASCII letters, digits and the
// bytes of extra (names are checked on every request: no regexp).
func onlyOf(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// ValidUnitName explains why name is not a valid unit name, or returns "".
// The rules are Pioreactor's: 1 to 63 letters, digits, '-' or '_', and not
// an IP address, "localhost" or "$broadcast".
func ValidUnitName(name string) string {
	switch {
	case len(name) < 1 || len(name) > 63 || !onlyOf(name, "_-"):
		return fmt.Sprintf("unit name %s must be 1 to 63 letters, digits, '-' or '_'", quoteShort(name))
	case net.ParseIP(name) != nil:
		return fmt.Sprintf("unit name %q is an IP address", name)
	case strings.EqualFold(name, "localhost"):
		return "unit name must not be localhost"
	case name == Broadcast:
		return "unit name must not be $broadcast"
	}
	return ""
}

// ValidExperimentName explains why name is not a valid experiment name, or
// returns "". Pioreactor's rules: 1 to 199 characters, not "current" (in any
// case), not starting with "_testing", none of # $ % + / \. Ours on top: valid
// UTF-8, no control characters, no "..", no leading or trailing white space.
func ValidExperimentName(name string) string {
	if !utf8.ValidString(name) {
		return "experiment name must be valid UTF-8"
	}
	n := utf8.RuneCountInString(name)
	switch {
	case n < 1 || n > MaxExperimentNameLen:
		return fmt.Sprintf("experiment name must be 1 to %d characters, not %d", MaxExperimentNameLen, n)
	case strings.EqualFold(name, "current"):
		return `experiment name must not be "current"`
	case strings.HasPrefix(name, "_testing"):
		return `experiment name must not start with "_testing"`
	case strings.ContainsAny(name, `#$%+/\`):
		return `experiment name must not contain any of # $ % + / \`
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "experiment name must not contain control characters (tab, new line, NUL…)"
	case strings.Contains(name, ".."):
		return `experiment name must not contain ".."`
	case strings.TrimSpace(name) != name:
		return "experiment name must not start or end with white space"
	}
	return ""
}

// ValidRequestID explains why id is not a valid request ID, or returns "":
// at most MaxRequestIDLen characters of A-Z a-z 0-9 . _ : - (a UUID fits).
// The empty ID is valid: it is a command without deduplication.
func ValidRequestID(id string) string {
	switch {
	case id == "":
		return ""
	case len(id) > MaxRequestIDLen:
		return fmt.Sprintf("the request ID is %d characters long; at most %d are allowed", len(id), MaxRequestIDLen)
	case !onlyOf(id, "._:-"):
		return "the request ID may only hold letters, digits, '.', '_', ':' and '-'"
	}
	return ""
}

// quoteShort quotes s for an error message, cut to its first 64 bytes.
func quoteShort(s string) string {
	if len(s) <= 64 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:64], len(s))
}

// reservedExperimentNames are the words Pioreactor's routes put where an
// experiment name goes (GET /api/experiments/latest, /active,
// /assignment_count); an experiment so named could not be reached.
var reservedExperimentNames = []string{"latest", "active", "assignment_count", UniversalExperiment}

// reservedUnitNames are the words Pioreactor's routes put where a unit name
// goes (GET /api/workers/discover, POST /api/workers/setup,
// GET /api/workers/assignments).
var reservedUnitNames = []string{"discover", "setup", "assignments", Broadcast}

// ReservedExperimentName explains why a new experiment may not take name, a
// word of Pioreactor's routes, or returns "". It is checked where experiments
// are created (the API), not in Apply, so that logs written before it replay alike.
func ReservedExperimentName(name string) string {
	for _, r := range reservedExperimentNames {
		if strings.EqualFold(name, r) {
			return fmt.Sprintf("experiment name %q is reserved: Pioreactor's API uses /api/experiments/%s for something else", name, r)
		}
	}
	return ""
}

// ReservedUnitName explains why a new unit may not take name, a word of
// Pioreactor's routes, or returns "". It is checked where units get their
// names (the node's configuration, the API), not in Apply.
func ReservedUnitName(name string) string {
	for _, r := range reservedUnitNames {
		if strings.EqualFold(name, r) {
			return fmt.Sprintf("unit name %q is reserved: Pioreactor's API uses /api/workers/%s for something else", name, r)
		}
	}
	return ""
}

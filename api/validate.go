package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
)

// MaxBodyBytes is the largest request body the API reads.
const MaxBodyBytes = 1 << 20

var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,63}$`)

// ValidUnitName explains why name is not a valid unit name, or returns "".
func ValidUnitName(name string) string {
	switch {
	case !unitNameRE.MatchString(name):
		return fmt.Sprintf("unit name %q must be 1 to 63 letters, digits, '-' or '_'", name)
	case net.ParseIP(name) != nil:
		return fmt.Sprintf("unit name %q is an IP address", name)
	case strings.EqualFold(name, "localhost"):
		return "unit name must not be localhost"
	}
	return ""
}

// ValidExperimentName explains why name is not a valid experiment name, or returns "".
func ValidExperimentName(name string) string {
	switch {
	case len(name) < 1 || len(name) > 199:
		return fmt.Sprintf("experiment name must be 1 to 199 characters, not %d", len(name))
	case name == "current":
		return `experiment name must not be "current"`
	case strings.HasPrefix(name, "_testing"):
		return `experiment name must not start with "_testing"`
	case strings.ContainsAny(name, `#$%+/\`):
		return `experiment name must not contain any of # $ % + / \`
	}
	return ""
}

// decodeBody decodes a JSON body strictly into v: at most MaxBodyBytes, no
// unknown fields, one value. On failure it has answered 400 and returns false.
func decodeBody(c *gin.Context, v any) bool {
	r := http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("unexpected data after the JSON value")
		}
	}
	if err == nil {
		return true
	}
	var (
		tooBig  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
	)
	cause := err.Error()
	switch {
	case errors.As(err, &tooBig):
		cause = fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, io.EOF):
		cause = "the body is empty"
	case errors.As(err, &typeErr):
		cause = fmt.Sprintf("field %q must be a %s, not a %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &synErr):
		cause = fmt.Sprintf("the body is not valid JSON (at byte %d): %v", synErr.Offset, err)
	}
	abort(c, http.StatusBadRequest, "bad request body", cause, "send one JSON object with only the documented fields (see DESIGN §4 / README)")
	return false
}

// readOptionalEmptyBody accepts a request without a body or with the empty
// JSON object {}, and nothing else: a null, another value, bad JSON or a
// malformed chunked body is 400 (it has answered) and nothing happens.
func readOptionalEmptyBody(c *gin.Context) bool {
	if c.Request.Body == nil {
		return true
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1024))
	if err != nil {
		abort(c, http.StatusBadRequest, "bad request body", "the body cannot be read: "+err.Error(), "send no body, or {}")
		return false
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return true
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil || len(m) > 0 {
		abort(c, http.StatusBadRequest, "bad request body", "this request takes no body, or the empty object {}", "send no body, or {}")
		return false
	}
	return true
}

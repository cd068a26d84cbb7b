package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
	"github.com/pioreactor/pio/fsm"
)

// MaxBodyBytes is the largest request body the API reads.
const MaxBodyBytes = 1 << 20

// decodeBody decodes a JSON body strictly into v: at most MaxBodyBytes, one
// JSON object (not null, not an array), no unknown fields. On failure it has
// answered 400 (408 for a body that came too slowly) and returns false.
func decodeBody(c *gin.Context, v any) bool {
	body, ok := readBody(c)
	return ok && decodeJSON(c, body, v)
}

// readBody reads the whole request body, at most MaxBodyBytes. On failure it
// has answered 400 (413 is not used: Pioreactor answers 400), or 408 when the
// client sent the body more slowly than the server's read timeout allows.
func readBody(c *gin.Context) ([]byte, bool) {
	if c.Request.Body == nil {
		return nil, true
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	if err == nil {
		return body, true
	}
	var (
		tooBig *http.MaxBytesError
		netErr net.Error
	)
	switch {
	case errors.As(err, &tooBig):
		abort(c, http.StatusBadRequest, "bad request body", fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes),
			"send one JSON object under 1 MiB with only the documented fields (see DESIGN §4 / README)")
	case errors.As(err, &netErr) && netErr.Timeout():
		abort(c, http.StatusRequestTimeout, "request body too slow", "the body did not arrive within the server's read timeout",
			"send the whole request at once; check the network between the client and this node")
	default:
		abort(c, http.StatusBadRequest, "bad request body", "the body could not be read: "+err.Error(),
			"send one JSON object with only the documented fields (see DESIGN §4 / README)")
	}
	return nil, false
}

// decodeBodyIgnoringUnknown is decodeBody for a body whose unknown fields
// Pioreactor ignores (its request structs without forbid_unknown_fields):
// they are ignored; the known fields' types are checked as strictly.
func decodeBodyIgnoringUnknown(c *gin.Context, v any) bool {
	body, ok := readBody(c)
	return ok && decodeJSONWith(c, body, v, false)
}

// decodeJSON decodes body strictly into v (see decodeBody); on failure it has answered 400.
func decodeJSON(c *gin.Context, body []byte, v any) bool {
	return decodeJSONWith(c, body, v, true)
}

// decodeJSONWith decodes body into v, refusing unknown fields when strict;
// on failure it has answered 400.
func decodeJSONWith(c *gin.Context, body []byte, v any, strict bool) bool {
	var err error
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		err = io.EOF
	case trimmed[0] != '{':
		err = errNotObject
	default:
		dec := json.NewDecoder(bytes.NewReader(body))
		if strict {
			dec.DisallowUnknownFields()
		}
		err = dec.Decode(v)
		if err == nil && dec.More() {
			err = errors.New("more than one JSON value")
		}
		if err == nil {
			if _, terr := dec.Token(); terr != io.EOF {
				err = errors.New("unexpected data after the JSON value")
			}
		}
	}
	if err == nil {
		return true
	}
	var (
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
	)
	cause := err.Error()
	switch {
	case errors.Is(err, io.EOF):
		cause = "the body is empty"
	case errors.Is(err, errNotObject):
		cause = "the body must be a JSON object"
	case errors.As(err, &typeErr):
		cause = fmt.Sprintf("field %q must be a %s, not a %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case errors.As(err, &synErr):
		cause = fmt.Sprintf("the body is not valid JSON (at byte %d): %v", synErr.Offset, err)
	}
	abort(c, http.StatusBadRequest, "bad request body", cause, "send one JSON object with only the documented fields (see DESIGN §4 / README)")
	return false
}

// errNotObject is the cause of a body that is JSON but not an object.
var errNotObject = errors.New("not a JSON object")

// checkRequestID answers 400 and returns false when the request's
// X-Request-Id breaks the rule of fsm.ValidRequestID.
func checkRequestID(c *gin.Context) bool {
	if why := fsm.ValidRequestID(c.GetHeader(client.RequestIDHeader)); why != "" {
		abort(c, http.StatusBadRequest, "invalid "+client.RequestIDHeader+" header", why,
			fmt.Sprintf("send at most %d characters of letters, digits, '.', '_', ':' and '-' (a UUID), or no %s at all: the node makes one up", fsm.MaxRequestIDLen, client.RequestIDHeader))
		return false
	}
	return true
}

// checkPathNames answers 400 and returns false when the unit or experiment
// named in the path breaks the naming rules; "$broadcast" may stand for
// every unit, and Pioreactor's "$experiment" for no experiment.
func checkPathNames(c *gin.Context) bool {
	if unit := c.Param("unit"); unit != "" && unit != fsm.Broadcast {
		if why := fsm.ValidUnitName(unit); why != "" {
			abort(c, http.StatusBadRequest, "invalid unit name", why, "use the unit's name as listed by GET /api/units")
			return false
		}
	}
	if exp := c.Param("exp"); exp != "" && exp != fsm.UniversalExperiment {
		if why := fsm.ValidExperimentName(exp); why != "" {
			abort(c, http.StatusBadRequest, "invalid experiment name", why, "use the experiment's name as listed by GET /api/experiments")
			return false
		}
	}
	return true
}

// badField answers 400 for a field of the body over its limits.
func badField(c *gin.Context, message, why string) {
	abort(c, http.StatusBadRequest, message, why, "shorten it (the limits are in the README, HTTP API)")
}

// readOptionalEmptyBody reads the body of a request that takes none: no
// bytes at all, or the empty JSON object {}. Anything else (null, other JSON,
// a malformed chunked body) has been answered 400 and it returns false. The
// body is read whatever Content-Length says: a chunked body has none.
func readOptionalEmptyBody(c *gin.Context) bool {
	body, ok := readBody(c)
	if !ok {
		return false
	}
	if len(body) == 0 {
		return true
	}
	var empty struct{}
	return decodeJSON(c, body, &empty)
}

package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/api/client"
)

// FuzzDecodeBody feeds arbitrary bodies to the strict request decoder of each
// body type: it must never panic, and it either decodes or answers 400 with
// error, cause and remediation. Seeds: testdata/fuzz/FuzzDecodeBody.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{`{"experiment":"e"}`, `{"pioreactor_unit":"w","address":"1.2.3.4"}`, `{"is_active":1}`,
		`{"unit":"w","label":"l"}`, `{"description":"d","tags":["a"]}`, `{"address":"h:1","force":true}`, `[]`, `{`, ``} {
		f.Add([]byte(s))
	}
	gin.SetMode(gin.ReleaseMode)
	targets := []func() any{
		func() any { return &createExperimentBody{} },
		func() any { return &addWorkerBody{} },
		func() any { return &isActiveBody{} },
		func() any { return &unitLabelBody{} },
		func() any { return &patchExperimentBody{} },
		func() any { return &client.JoinRequest{} },
		func() any { return &invitationBody{} },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mk := range targets {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			v := mk()
			if decodeBody(c, v) {
				if w.Code != http.StatusOK || w.Body.Len() != 0 {
					t.Fatalf("decoded but answered %d", w.Code)
				}
				if _, err := json.Marshal(v); err != nil {
					t.Fatalf("decoded value does not encode: %v", err)
				}
				continue
			}
			var e client.Error
			if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Message == "" || e.Cause == "" || e.Remediation == "" {
				t.Fatalf("refused %q with %d %s", body, w.Code, w.Body.String())
			}
		}
	})
}

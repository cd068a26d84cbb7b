package mqtt

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook decides who may connect, subscribe and publish, and hands /set
// commands to the API.
//
//   - A client that sends a password must send the API token (when the API
//     asks for one); a wrong one is refused at connect.
//   - A client without one connects and subscribes only when reads of the
//     API are open (api.read_auth off).
//   - Clients publish nothing but commands, pioreactor/{unit}/{exp}/{job}/{setting}/set,
//     and only when the API would take the write from them. The broker's
//     topic tree is the cluster's state: nobody else writes it.
type hook struct {
	mochi.HookBase
	b *Broker

	mu     sync.Mutex
	tokens map[*mochi.Client]string // the password of each connected client
}

func (h *hook) ID() string { return "pio-auth" }

func (h *hook) Provides(x byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnDisconnect}, []byte{x})
}

func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	pw := string(pk.Connect.Password)
	ok := h.b.src.Authorized(pw, pw != "")
	if !ok {
		h.b.log.Info("MQTT client refused: missing or wrong API token", "remote", cl.Net.Remote, "client", cl.ID)
		return false
	}
	h.mu.Lock()
	h.tokens[cl] = pw
	h.mu.Unlock()
	return true
}

func (h *hook) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	h.mu.Lock()
	delete(h.tokens, cl)
	h.mu.Unlock()
}

func (h *hook) token(cl *mochi.Client) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.tokens[cl]
	return t, ok
}

func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if len(topic) > h.b.cfg.MaxTopicLength {
		return false
	}
	tok, ok := h.token(cl)
	if !ok {
		return false
	}
	if write {
		if _, ok := parseSet(topic); !ok {
			return false
		}
	}
	return h.b.src.Authorized(tok, write)
}

// OnPublish passes a client's command on (not retained: a command is done
// once), and queues it for the API.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	set, ok := parseSet(pk.TopicName)
	if !ok {
		return pk, packets.ErrRejectPacket // the ACL refuses these already
	}
	pk.FixedHeader.Retain = false
	set.payload = append([]byte(nil), pk.Payload...)
	set.token, _ = h.token(cl)
	set.remote = cl.Net.Remote
	select {
	case h.b.commands <- set:
	default:
		h.b.log.Warn("MQTT command dropped: too many waiting", "topic", pk.TopicName, "max", h.b.cfg.MaxCommands)
	}
	return pk, nil
}

// command is one /set a client published.
type command struct {
	unit, exp, job, setting string
	payload                 []byte
	token, remote           string
}

// parseSet splits pioreactor/{unit}/{exp}/{job}/{setting}/set.
func parseSet(topic string) (command, bool) {
	p := strings.Split(topic, "/")
	if len(p) != 6 || p[0] != "pioreactor" || p[5] != "set" {
		return command{}, false
	}
	for _, s := range p[1:5] {
		if s == "" || strings.ContainsAny(s, "+#") {
			return command{}, false
		}
	}
	return command{unit: p[1], exp: p[2], job: p[3], setting: p[4]}, true
}

// runCommands sends the queued commands through the node's HTTP API, one
// at a time, until Close.
func (b *Broker) runCommands() {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case c := <-b.commands:
			b.dispatch(c)
		}
	}
}

// dispatch is PATCH /api/workers/{unit}/jobs/update/job_name/{job}/experiments/{exp}
// with the client's password as the bearer token: the API checks it and
// the settings as it does for any client.
func (b *Broker) dispatch(c command) {
	if b.src.API == nil {
		return
	}
	var v any
	if err := json.Unmarshal(c.payload, &v); err != nil {
		v = string(c.payload) // Pioreactor's clients send bare strings too
	}
	body, err := json.Marshal(map[string]any{"settings": map[string]any{c.setting: v}})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	path := "/api/workers/" + url.PathEscape(c.unit) + "/jobs/update/job_name/" + url.PathEscape(c.job) + "/experiments/" + url.PathEscape(c.exp)
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, path, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.RemoteAddr = c.remote
	w := &response{h: http.Header{}}
	b.src.API.ServeHTTP(w, req)
	if w.code >= 300 {
		b.log.Warn("MQTT command refused by the API", "unit", c.unit, "experiment", c.exp, "job", c.job, "setting", c.setting,
			"status", w.code, "answer", strings.TrimSpace(w.body.String()))
		return
	}
	b.log.Info("MQTT command sent", "unit", c.unit, "experiment", c.exp, "job", c.job, "setting", c.setting)
}

// response keeps what the API answers a command (its first 4 KiB).
type response struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (r *response) Header() http.Header { return r.h }
func (r *response) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}
func (r *response) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if room := 4096 - r.body.Len(); room > 0 {
		r.body.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

package mqtt

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over WebSocket (binary frames, subprotocol "mqtt")
// on a listener opened beforehand, so that its bound address is known (port 0).
type wsListener struct {
	id       string
	ln       net.Listener
	srv      *http.Server
	up       websocket.Upgrader
	limit    int64
	log      *slog.Logger
	mu       sync.Mutex
	estab    listeners.EstablishFn
	served   chan struct{}
	serving  bool
	stopOnce sync.Once
}

func newWSListener(id string, ln net.Listener, limit int64) *wsListener {
	l := &wsListener{id: id, ln: ln, limit: limit, served: make(chan struct{}),
		up: websocket.Upgrader{Subprotocols: []string{"mqtt"}, CheckOrigin: func(*http.Request) bool { return true }}}
	l.srv = &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	return l
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Address() string  { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string { return "ws" }

func (l *wsListener) Init(log *slog.Logger) error { l.log = log; return nil }

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.estab, l.serving = establish, true
	l.mu.Unlock()
	defer close(l.served)
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("MQTT WebSocket listener stopped", "error", err)
	}
}

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := l.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadLimit(l.limit + 16)
	l.mu.Lock()
	establish := l.estab
	l.mu.Unlock()
	if err := establish(l.id, &wsConn{Conn: c.NetConn(), ws: c}); err != nil {
		l.log.Debug("MQTT WebSocket client ended", "error", err)
	}
}

// Close stops accepting, disconnects this listener's clients and waits for Serve.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = l.srv.Shutdown(ctx) // upgraded connections are not the server's: closeClients ends them
		closeClients(l.id)
		l.mu.Lock()
		serving := l.serving
		l.mu.Unlock()
		if serving {
			<-l.served
		} else {
			l.ln.Close()
		}
	})
}

// wsConn is a WebSocket connection read and written as a byte stream: each
// write is one binary message; reads go through messages one after another.
type wsConn struct {
	net.Conn
	ws  *websocket.Conn
	cur io.Reader
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.cur == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errors.New("mqtt over websocket: a text message")
			}
			c.cur = r
		}
		n, err := c.cur.Read(p)
		if errors.Is(err, io.EOF) {
			c.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

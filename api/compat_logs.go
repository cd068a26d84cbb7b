package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/pioreactor/pio/fsm"
)

// maxLogWordLen bounds the source, source_ and timestamp of a posted log line.
const maxLogWordLen = 64

// postLogBody is the body of POST /api/workers/{unit}/experiments/{exp}/logs,
// Pioreactor's fields: message, source, level and timestamp are required.
// source and source_ (the MQTT topic's part) are checked, then not kept: pio
// stores log lines as Pioreactor's log routes show them.
type postLogBody struct {
	Message     *string `json:"message"`
	Source      *string `json:"source"`
	Level       *string `json:"level"`
	Timestamp   *string `json:"timestamp"`
	Task        *string `json:"task"`
	SourceTopic *string `json:"source_"`
}

// logTimeLayouts are the timestamps a posted log line may carry: RFC 3339
// (Pioreactor's UI sends 2025-01-31T12:34:56.000Z), or without a zone (UTC).
var logTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"}

// parseLogTime reads a posted log line's timestamp.
func parseLogTime(s string) (time.Time, bool) {
	for _, l := range logTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// checkPostLog checks a posted log line's fields; on failure it has answered 400.
func checkPostLog(c *gin.Context, b postLogBody) (level string, at time.Time, ok bool) {
	if b.Message == nil || b.Source == nil || b.Level == nil || b.Timestamp == nil {
		abort(c, http.StatusBadRequest, "missing field", `the body needs "message", "source", "level" and "timestamp"`,
			`send {"message": "added 1 ml of glucose", "source": "UI", "level": "INFO", "timestamp": "2025-01-31T12:34:56.000Z", "task": "manual"}`)
		return "", time.Time{}, false
	}
	for name, v := range map[string]*string{"source": b.Source, "source_": b.SourceTopic, "timestamp": b.Timestamp} {
		if v != nil && utf8.RuneCountInString(*v) > maxLogWordLen {
			badField(c, name+" too long", fmt.Sprintf("%s is longer than %d characters", name, maxLogWordLen))
			return "", time.Time{}, false
		}
	}
	if len(*b.Message) > fsm.MaxLogMessageLen {
		badField(c, "message too long", fmt.Sprintf("the message is %d bytes long; at most %d are allowed", len(*b.Message), fsm.MaxLogMessageLen))
		return "", time.Time{}, false
	}
	if b.Task != nil && utf8.RuneCountInString(*b.Task) > fsm.MaxJobNameLen {
		badField(c, "task too long", fmt.Sprintf("task is longer than %d characters", fsm.MaxJobNameLen))
		return "", time.Time{}, false
	}
	level = strings.ToUpper(*b.Level)
	if _, known := fsm.LogLevels[level]; !known {
		abort(c, http.StatusBadRequest, "bad level", fmt.Sprintf("level %s is not a log level", quoteCut(*b.Level)), "use DEBUG, INFO, NOTICE, WARNING or ERROR (in any case)")
		return "", time.Time{}, false
	}
	at, ok = parseLogTime(*b.Timestamp)
	if !ok {
		abort(c, http.StatusBadRequest, "bad timestamp", fmt.Sprintf("%s is not a UTC ISO 8601 time", quoteCut(*b.Timestamp)), "send e.g. 2025-01-31T12:34:56.000Z")
		return "", time.Time{}, false
	}
	return level, at, true
}

// postLog answers POST /api/workers/{unit}/experiments/{exp}/logs (and the
// same under /api/units): a user's line in the experiment's log, stored as
// the jobs' lines are (replicated, on disk) and published on MQTT; the log
// routes serve it at once. $broadcast writes it for every unit assigned to
// the experiment; $experiment means no experiment. 202 {"status": "accepted"}.
func (s *Server) postLog(c *gin.Context) {
	var b postLogBody
	if !decodeBody(c, &b) {
		return
	}
	level, at, ok := checkPostLog(c, b)
	if !ok {
		return
	}
	task := ""
	if b.Task != nil {
		task = *b.Task
	}
	exp := c.Param("exp")
	if exp != fsm.UniversalExperiment {
		if _, ok := s.lookupExperiment(c); !ok {
			return
		}
	} else if !s.readable(c) {
		return
	}
	var units []string
	if name := c.Param("unit"); name == fsm.Broadcast {
		for _, a := range s.fsm.Assignments() {
			if a.Experiment == exp {
				units = append(units, a.Unit)
			}
		}
	} else if u, ok := s.lookupUnit(c, name); ok {
		units = []string{u.Name}
	} else {
		return
	}
	lines := make([]fsm.LogEntry, 0, len(units))
	for _, u := range units {
		l := fsm.LogEntry{Time: at, Level: level, Unit: u, Message: *b.Message, Task: task, Experiment: exp}
		if why := fsm.ValidLogEntry(l); why != "" {
			badField(c, "bad log line", why)
			return
		}
		lines = append(lines, l)
	}
	if len(lines) > 0 && !s.apply(c, fsm.CmdRecordReadings, fsm.RecordReadings{Readings: []fsm.Reading{}, Logs: lines}) {
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"status": "accepted"})
}

// systemLogs answers GET /api/units/{unit}/system_logs: as Pioreactor, the
// unit's log lines of no experiment ($experiment), newest first, 100 a page
// (?skip=, ?min_level=). pio's are the HAT's button presses and the lines a
// user posts to $experiment; the OS's own logs stay in journald.
func (s *Server) systemLogs(c *gin.Context) {
	s.answerLogs(c, fsm.UniversalExperiment)
}

package membership

import (
	"fmt"
	"testing"
	"time"

	"github.com/pioreactor/pio/fsm"
)

// The health limiter lets at most one "dead" and one "alive" event per member
// through in a window, counts the changes it holds back, says so in the next
// event of that member, and catches up when the log no longer tells the truth.
func TestHealthEventsRateLimitedPerMember(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	l := healthLimiter{window: healthEventWindow}
	type step struct {
		at            time.Duration
		id            string
		change, state string
		want          string // the message recorded ("" for none)
	}
	steps := []step{
		// worker3 dies and comes back: both recorded.
		{0, "w3", HealthDead, HealthDead, "worker3 stopped answering (dead)"},
		{time.Second, "w3", HealthAlive, HealthAlive, "worker3 is back"},
		// Then it flaps: nothing more for 30 s after each recorded kind.
		{2 * time.Second, "w3", HealthDead, HealthDead, ""},
		{3 * time.Second, "w3", HealthAlive, HealthAlive, ""},
		{4 * time.Second, "w3", HealthDead, HealthDead, ""},
		{5 * time.Second, "w3", HealthAlive, HealthAlive, ""},
		{6 * time.Second, "w3", HealthDead, HealthDead, ""},
		// Passes without a change record nothing while the window holds.
		{10 * time.Second, "w3", "", HealthDead, ""},
		// Another member is limited on its own.
		{11 * time.Second, "w4", HealthDead, HealthDead, "worker4 stopped answering (dead)"},
		{29 * time.Second, "w3", "", HealthDead, ""},
		// 30 s after the first death, worker3 is still dead: the log (which says
		// "back") is caught up; the 4 changes before the last one were not logged.
		{30 * time.Second, "w3", "", HealthDead, "worker3 stopped answering (dead; 4 more changes in the last 28 s not logged)"},
		{31 * time.Second, "w3", "", HealthDead, ""},
		// It comes back, 30 s after the last "back": recorded at once.
		{31 * time.Second, "w3", HealthAlive, HealthAlive, "worker3 is back"},
		// One flap inside the window, then it stays alive: the log is right, so
		// the held-back change waits for the next event.
		{32 * time.Second, "w3", HealthDead, HealthDead, ""},
		{33 * time.Second, "w3", HealthAlive, HealthAlive, ""},
		{70 * time.Second, "w3", "", HealthAlive, ""},
		{100 * time.Second, "w3", HealthDead, HealthDead, "worker3 stopped answering (dead; 2 more changes in the last 68 s not logged)"},
		{101 * time.Second, "w3", HealthAlive, HealthAlive, "worker3 is back"},
		// A suspect member is neither dead nor alive: no catch-up.
		{102 * time.Second, "w3", HealthDead, HealthDead, ""},
		{140 * time.Second, "w3", "", "", ""},
		{141 * time.Second, "w3", "", HealthDead, "worker3 stopped answering (dead)"}, // late, but true
	}
	names := map[string]string{"w3": "worker3", "w4": "worker4"}
	recorded := 0
	for i, s := range steps {
		note, ok := l.observe(s.id, s.change, s.state, at(s.at))
		got := ""
		if ok {
			got = note.message(names[s.id], at(s.at))
			recorded++
		}
		if got != s.want {
			t.Fatalf("step %d (%s at %s): recorded %q, want %q", i, s.change, s.at, got, s.want)
		}
	}
	if recorded != 8 {
		t.Fatalf("%d events recorded", recorded)
	}
}

// A member that flaps every pass for ten minutes fills the event log with
// about one death and one return per window, not thousands.
func TestFlappingMemberBoundedEvents(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	l := healthLimiter{window: healthEventWindow}
	events := 0
	const pass = 500 * time.Millisecond
	for i := 0; i < int(10*time.Minute/pass); i++ {
		kind := HealthDead
		if i%2 == 1 {
			kind = HealthAlive
		}
		if _, ok := l.observe("w", kind, kind, t0.Add(time.Duration(i)*pass)); ok {
			events++
		}
	}
	if max := 2 * int(10*time.Minute/healthEventWindow); events > max+2 || events < max-2 {
		t.Fatalf("%d events in 10 minutes of flapping; want about %d", events, max)
	}
}

// A new leader's reconciler starts from the replicated event log: a unit
// whose last health event is a death is dead, one with none (or a return) is
// alive, and the rate limit goes on from the recorded events' times.
func TestSeedHealthFromEventLog(t *testing.T) {
	f := fsm.New()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	apply := func(i int, typ fsm.CommandType, p any) {
		c, err := fsm.NewCommand(typ, fmt.Sprint("seed-", i), at, p)
		if err != nil {
			t.Fatal(err)
		}
		if r := f.ApplyCommand(c); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	apply(1, fsm.CmdRegisterUnit, fsm.RegisterUnit{NodeID: "id-a", Name: "alpha", Worker: true, RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"})
	apply(2, fsm.CmdRegisterUnit, fsm.RegisterUnit{NodeID: "id-b", Name: "beta", Worker: true, RaftAddr: "127.0.0.1:3", HTTPAddr: "127.0.0.1:4"})
	apply(3, fsm.CmdRegisterUnit, fsm.RegisterUnit{NodeID: "id-c", Name: "gamma", Worker: true, RaftAddr: "127.0.0.1:5", HTTPAddr: "127.0.0.1:6"})
	apply(4, fsm.CmdRecordEvent, fsm.RecordEvent{Kind: HealthDead, NodeID: "id-b", Unit: "beta", Message: "beta stopped answering (dead)"})
	apply(5, fsm.CmdRecordEvent, fsm.RecordEvent{Kind: HealthDead, NodeID: "id-c", Unit: "gamma", Message: "gamma stopped answering (dead)"})
	apply(6, fsm.CmdRecordEvent, fsm.RecordEvent{Kind: HealthAlive, NodeID: "id-c", Unit: "gamma", Message: "gamma is back"})
	m := &Manager{fsm: f}
	m.rec.reset()
	m.seedHealth()
	want := map[string]string{"id-a": HealthAlive, "id-b": HealthDead, "id-c": HealthAlive}
	for id, h := range want {
		if got := m.rec.health[id]; got != h {
			t.Errorf("%s seeded %q, want %q", id, got, h)
		}
	}
	if l := m.rec.healthLog.members["id-b"]; l == nil || l.logged != HealthDead || !l.last[HealthDead].Equal(at) {
		t.Errorf("beta's rate limit not seeded from its event: %+v", l)
	}
	// alpha was alive by the log; its death now is a change to record.
	if _, ok := m.rec.healthLog.observe("id-a", HealthDead, HealthDead, at.Add(time.Minute)); !ok {
		t.Error("alpha's first death under a new leader was not let through")
	}
	// beta's death was recorded; a second one within the window is not.
	if _, ok := m.rec.healthLog.observe("id-b", HealthDead, HealthDead, at.Add(10*time.Second)); ok {
		t.Error("beta's death recorded twice within the window")
	}
	// Seeding happens once per leadership.
	m.rec.health["id-a"] = HealthDead
	m.seedHealth()
	if m.rec.health["id-a"] != HealthDead {
		t.Error("seeded again within the same leadership")
	}
}

package mqtt

import (
	"encoding/json"
	"github.com/pioreactor/pio/gpio"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pioreactor/pio/fsm"
	"github.com/pioreactor/pio/membership"
)

// mirror publishes the cluster's state as it changes, until Close: each
// applied entry's readings and logs as they come, and the retained topics
// (units' health, jobs and their settings) again after every change of who
// runs what or who is alive.
func (b *Broker) mirror() {
	defer b.wg.Done()
	// stale is set by a change that calls for a full pass over the retained
	// topics. The pass waits until no change is queued, and comes at most
	// every retainedPassEvery: a burst (a hundred Pioreactors joining, a node
	// catching up) costs a few passes, not one per entry or gossip event,
	// each over every unit.
	stale := false
	var last time.Time // of the last pass
	later := time.NewTimer(time.Hour)
	later.Stop()
	defer later.Stop()
	waiting := false // later is armed
	pass := func() {
		if !stale || waiting || len(b.changes) > 0 {
			return
		}
		if wait := passEvery(b.units) - time.Since(last); wait > 0 {
			later.Reset(wait)
			waiting = true
			return
		}
		b.syncRetained()
		stale, last = false, time.Now()
	}
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.resync:
			stale = true
			pass()
		case c := <-b.changes:
			stale = b.applied(c) || stale
			pass()
		case <-later.C:
			waiting = false
			pass()
		}
	}
}

// retainedPassEvery is the shortest time between two full passes over the
// retained topics of a cluster of up to passUnits units: MQTT dashboards see
// a change of who runs what or who is alive within it.
const retainedPassEvery = 250 * time.Millisecond

// passUnits is the number of units above which full passes are spaced out in
// proportion (passEvery), so that a busy cluster's passes cost the same
// whatever its size: a pass goes over every unit, and in a large cluster
// that is starting or churning something calls for one all the time. With
// 200 units, the passes over every unit were a quarter of each node's CPU.
const passUnits = 50

// passEvery is the shortest time between two full passes over the retained
// topics of units units: retainedPassEvery, times units/passUnits above
// passUnits (200 units: a second).
func passEvery(units int) time.Duration {
	if units <= passUnits {
		return retainedPassEvery
	}
	return retainedPassEvery * time.Duration(units) / passUnits
}

// applied publishes what one applied entry changed. It reports whether the
// entry calls for a full pass over the retained topics (units, assignments,
// experiments changed), which the caller may put off while more changes are
// queued.
func (b *Broker) applied(c fsm.Change) (stale bool) {
	if c.Cmd == nil { // a snapshot was restored, or the state reset
		return true
	}
	if c.Result.Err != nil || c.Result.Duplicate {
		return false
	}
	var recs []fsm.RecordReadings
	switch c.Cmd.Type {
	case fsm.CmdRecordBatches:
		var p fsm.RecordBatches
		if json.Unmarshal(c.Cmd.Payload, &p) != nil {
			return false
		}
		for i, bt := range p.Batches {
			if i >= len(c.Result.Batches) || c.Result.Batches[i] != nil {
				continue // refused, or stored by an earlier entry
			}
			if r, why := bt.Record(); why == "" {
				recs = append(recs, r)
			}
		}
	case fsm.CmdRecordReadings:
		var r fsm.RecordReadings
		if json.Unmarshal(c.Cmd.Payload, &r) != nil {
			return false
		}
		recs = append(recs, r)
	case fsm.CmdPruneReadings, fsm.CmdRecordEvent:
		return false
	default: // units, assignments, experiments: who runs what may have changed
		return true
	}
	for _, r := range recs {
		if r.Jobs != nil {
			// A job may have started, stopped or changed a setting: the next
			// pass publishes it. The IR intensity goes with this entry's
			// own OD readings, so it is taken from the report now.
			stale = true
			b.irFrom(r.Jobs)
		}
		for _, x := range r.Readings {
			b.reading(x)
		}
		for _, l := range r.Logs {
			b.logLine(l)
		}
	}
	return stale
}

// irFrom keeps the IR LED intensity of the od_reading job of a worker's job
// report, which its OD readings carry.
func (b *Broker) irFrom(rep *fsm.JobsReport) {
	u, found := b.src.FSM.UnitByID(rep.NodeID)
	if !found {
		return
	}
	for _, j := range rep.Jobs {
		b.keepIR(u.Name, j)
	}
}

// keepIR keeps the IR LED intensity of unit's job r if r is its od_reading
// job: the unit's OD readings carry it.
func (b *Broker) keepIR(unit string, r fsm.JobRecord) {
	if r.Name != "od_reading" {
		return
	}
	if v, ok := r.Settings["ir_led_intensity"].(float64); ok {
		b.ir[unit] = v
	}
}

// stamp is Pioreactor's timestamp: ISO 8601, UTC, milliseconds.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// segment reports whether s may be one level of a topic.
func segment(s string) bool { return s != "" && !strings.ContainsAny(s, "/+#\x00") }

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// reading publishes one reading as Pioreactor's job publishes it.
func (b *Broker) reading(x fsm.Reading) {
	if !segment(x.Unit) || !segment(x.Experiment) {
		return
	}
	base := "pioreactor/" + x.Unit + "/" + x.Experiment + "/"
	ts := stamp(x.Time)
	switch x.Kind {
	case "od":
		// RawODReading (calibrated: 0) of the 90° photodiode, as od_reading's
		// od2, and the same in ODReadings, as its ods.
		ch := gpio.ODSignalChannel
		od := map[string]any{"timestamp": ts, "angle": "90", "od": x.Value, "channel": ch, "ir_led_intensity": b.ir[x.Unit], "calibrated": 0}
		b.retainReading(base+"od_reading/od"+ch, jsonText(od))
		b.retainReading(base+"od_reading/ods", jsonText(map[string]any{"timestamp": ts, "ods": map[string]any{ch: od}}))
	case "growth_rate":
		b.retainReading(base+"growth_rate_calculating/growth_rate", jsonText(map[string]any{"growth_rate": x.Value, "timestamp": ts}))
	case "temperature":
		b.retainReading(base+"temperature_automation/temperature", jsonText(map[string]any{"temperature": x.Value, "timestamp": ts}))
	case "dosing":
		b.publish(base+"dosing_events", jsonText(map[string]any{"volume_change": x.Value, "event": "add_media",
			"source_of_event": "dosing_automation", "timestamp": ts}), false)
	}
}

// retainReading publishes a reading that is also a job's setting in
// Pioreactor (retained until the job ends).
func (b *Broker) retainReading(topic, payload string) {
	b.last[topic] = payload
	b.pub[topic] = payload
	b.publish(topic, payload, true)
}

// logLine publishes one job log line as Pioreactor's MQTT log handler does.
func (b *Broker) logLine(l fsm.LogEntry) {
	lvl := strings.ToLower(l.Level)
	if !segment(l.Unit) || !segment(l.Experiment) || !segment(lvl) {
		return
	}
	b.publish("pioreactor/"+l.Unit+"/"+l.Experiment+"/logs/app/"+lvl, jsonText(map[string]any{
		"message": l.Message, "level": l.Level, "task": l.Task, "source": "app", "timestamp": stamp(l.Time)}), false)
}

// settingText is a setting's payload as Pioreactor publishes it: strings
// and numbers bare, nothing empty, anything else JSON.
func settingText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return jsonText(v)
}

// alive reports whether gossip counts a node as up (a suspect is not dead yet).
func alive(st membership.MemberState, ok bool) bool {
	return ok && (st.Health == membership.HealthAlive || st.Health == membership.HealthSuspect)
}

// syncRetained publishes the retained topics the state calls for and
// withdraws those it no longer does: a unit's health; each job's state
// ("lost" when its worker is dead, as GET .../jobs/running says) and
// settings. A job that is gone is "disconnected", and its settings cleared.
func (b *Broker) syncRetained() {
	b.passes.Add(1)
	states := b.src.Members.States()
	want := map[string]string{}
	jobs := map[string]bool{} // topic prefixes of running jobs
	units := b.src.FSM.Units()
	b.units = len(units)
	for _, u := range units {
		if !segment(u.Name) {
			continue
		}
		st, ok := states[u.NodeID]
		up := alive(st, ok)
		state := "lost"
		if up {
			state = "ready"
		}
		monitor := "pioreactor/" + u.Name + "/$experiment/monitor/"
		want[monitor+"$state"] = state
		if ok && st.Meta.Version != "" {
			want[monitor+"versions"] = jsonText(map[string]string{"app": st.Meta.Version})
		}
		if host, _, err := net.SplitHostPort(st.Meta.HTTPAddr); ok && err == nil && net.ParseIP(host).To4() != nil {
			want[monitor+"ipv4"] = host
		}
		if !u.Worker {
			continue
		}
		for _, r := range b.src.FSM.JobRecords(u.NodeID) {
			if !segment(r.Experiment) || !segment(r.Name) {
				continue
			}
			base := "pioreactor/" + u.Name + "/" + r.Experiment + "/" + r.Name + "/"
			jobs[base] = true
			js := r.State
			if !up {
				js = "lost"
			}
			want[base+"$state"] = js
			for k, v := range r.Settings {
				if segment(k) && k != "$state" && len(base)+len(k) <= b.cfg.MaxTopicLength {
					want[base+k] = settingText(v)
				}
			}
			b.keepIR(u.Name, r)
		}
	}
	for t, p := range b.last {
		if i := strings.LastIndexByte(t, '/'); i >= 0 && jobs[t[:i+1]] {
			want[t] = p
		} else {
			delete(b.last, t)
		}
	}
	for t, p := range want {
		if old, ok := b.pub[t]; !ok || old != p {
			b.pub[t] = p
			b.publish(t, p, true)
		}
	}
	for t, p := range b.pub {
		if _, ok := want[t]; ok {
			continue
		}
		if strings.HasSuffix(t, "/$state") && !strings.HasSuffix(t, "/monitor/$state") {
			if p != "disconnected" {
				b.pub[t] = "disconnected"
				b.publish(t, "disconnected", true)
			}
			continue
		}
		delete(b.pub, t)
		b.publish(t, "", true) // an empty retained message clears it
	}
}

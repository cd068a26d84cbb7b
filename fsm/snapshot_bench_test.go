package fsm

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkSnapshot takes snapshots of a cluster holding no readings and one
// holding a day of a 20-unit lab's (OD and growth rate every 5 s): the size
// (snapshot-bytes) and time per op must be the same, since a snapshot holds
// the state only.
func BenchmarkSnapshot(b *testing.B) {
	for _, days := range []int{0, 1} {
		b.Run(fmt.Sprintf("days=%d", days), func(b *testing.B) {
			f := New()
			if err := f.OpenReadings(DefaultStoreConfig(filepath.Join(b.TempDir(), "readings.db")), nil); err != nil {
				b.Fatal(err)
			}
			defer f.CloseReadings()
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			index := uint64(0)
			apply := func(typ CommandType, p any) {
				index++
				c, err := NewCommand(typ, fmt.Sprint("b-", index), at, p)
				if err != nil {
					b.Fatal(err)
				}
				data, err := c.Encode()
				if err != nil {
					b.Fatal(err)
				}
				if r, _ := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(Result); r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			apply(CmdCreateExperiment, CreateExperiment{Experiment: "exp1"})
			// A day in 4-s entries of the 20 units' readings, 1,000 readings an entry.
			var rs []Reading
			for s := 0; s < days*86400; s += 5 {
				for u := 0; u < 20; u++ {
					unit := fmt.Sprintf("unit%02d", u)
					t := at.Add(time.Duration(s) * time.Second)
					rs = append(rs, Reading{Unit: unit, Experiment: "exp1", Kind: "od", Time: t, Value: 0.5},
						Reading{Unit: unit, Experiment: "exp1", Kind: "growth_rate", Time: t, Value: 0.2})
				}
				if len(rs) >= 1000 {
					apply(CmdRecordReadings, RecordReadings{Readings: rs})
					rs = nil
				}
			}
			b.ResetTimer()
			var size int
			for i := 0; i < b.N; i++ {
				snap, err := f.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				sink := &memSink{}
				if err := snap.Persist(sink); err != nil {
					b.Fatal(err)
				}
				snap.Release()
				size = sink.Len()
			}
			b.ReportMetric(float64(size), "snapshot-bytes")
			b.ReportMetric(float64(f.ReadingsCount()), "readings")
		})
	}
}

package system

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/pioreactor/pio/fsm"
)

// TestUIExportData: on the Experiments page, "Export data" opens a dialog
// of the node's datasets; a bad choice shows the API's cause and remedy; an
// export of the optical density (the first write: it asks to sign in) shows
// its progress, and the browser downloads the zip the node made.
func TestUIExportData(t *testing.T) {
	b := newBrowser(t)
	n := startNode(t, "solo")
	waitCluster(t, []*testNode{n}, 1, 1)
	const short, long = 10 * time.Second, 30 * time.Second
	if code, _ := createExperiment(t, n, "exp1"); code != http.StatusCreated {
		t.Fatalf("create exp1: %d", code)
	}
	start := time.Now().UTC().Truncate(time.Second)
	var rs []fsm.Reading
	for i := 0; i < 4; i++ {
		rs = append(rs, fsm.Reading{Unit: "solo", Experiment: "exp1", Kind: "od", Time: start.Add(time.Duration(i) * time.Minute), Value: float64(i) / 10})
	}
	shipBatch(t, n, fsm.RecordReadings{Readings: rs})
	eventually(t, short, "the readings stored", func() error {
		c := 0
		_ = n.a.Node().FSM().EachReading("exp1", "od", time.Time{}, time.Time{}, false, func(fsm.Reading) error { c++; return nil })
		if c != len(rs) {
			return fmt.Errorf("%d of %d", c, len(rs))
		}
		return nil
	})
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}

	b.do("open the experiment", short, chromedp.Navigate("http://"+n.addr()+"/#/experiments/exp1"))
	b.waitText("#experiment-detail", "exp1", short)
	b.click("#export-open", short)
	b.waitJS("the dialog with the node's datasets", short,
		`!!document.querySelector("dialog[open] #export-datasets input[value=od_readings]") && document.querySelectorAll("#export-datasets input[name=dataset]").length === 9`)
	b.waitText("#export-datasets", "Optical density", short)

	// Nothing ticked: said in the dialog, nothing sent.
	b.click("#export-submit", short)
	b.waitText("#export-progress .error-box", "choose what to export", short)

	// Times the wrong way round: the API's answer, with its cause and remedy.
	b.click("#export-datasets input[value=od_readings]", short)
	b.do("times the wrong way round", short, chromedp.Evaluate[chromedp.Void](
		`document.querySelector("#export-start").value = "2030-01-02T00:00:00"; document.querySelector("#export-end").value = "2030-01-01T00:00:00"`))
	b.click("#export-submit", short)
	b.signIn(n.apiToken(), short) // the page's first write asks for the token, then goes on
	b.waitText("#export-progress .error-box", "start_time must be earlier than or equal to end_time", short)
	if s := b.text("#export-progress .error-box"); !strings.Contains(s, "What to do:") {
		t.Fatalf("no remedy shown: %q", s)
	}

	// The whole range, by unit: progress, then the zip is downloaded.
	b.do("clear the times, by unit", short, chromedp.Evaluate[chromedp.Void](
		`document.querySelector("#export-start").value = ""; document.querySelector("#export-end").value = ""`))
	b.click("#export-by-unit", short)
	b.click("#export-submit", short)
	b.waitJS("the export done", long, `!!document.querySelector("#export-link")`)
	name := b.text("#export-link")
	if !strings.HasPrefix(name, "export_") || !strings.HasSuffix(name, ".zip") {
		t.Fatalf("the dialog names no export: %q (%s)", name, b.mainText())
	}
	made, err := os.ReadFile(filepath.Join(n.cfg.DataDir, "exports", name))
	if err != nil {
		t.Fatalf("the node made no %s: %v", name, err)
	}
	var got []byte
	eventually(t, long, "the browser downloaded "+name, func() error {
		got, err = os.ReadFile(filepath.Join(downloads, name))
		return err
	})
	if !bytes.Equal(got, made) {
		t.Fatalf("the download (%d bytes) is not the node's file (%d bytes)", len(got), len(made))
	}
	csvs := unzipCSVs(t, got)
	if rows := csvs["od_readings/od_readings-exp1-solo"]; len(rows) != 1+len(rs) || !strings.HasPrefix(rows[0], "experiment,pioreactor_unit,timestamp,od_reading,") {
		t.Fatalf("the downloaded CSVs: %v", csvs)
	}
	b.screenshot("export-done")
	b.do("escape", short, chromedp.KeyEvent("\x1b"))
	b.waitJS("the dialog closed, focus back", short, `!document.querySelector("dialog[open]") && document.activeElement.id === "export-open"`)
	b.noConsoleErrors()
}

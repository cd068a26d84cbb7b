package export

import "testing"

// Every column of every dataset's CSVs, generated ones included, is described in its schema.
func TestColumnsDescribed(t *testing.T) {
	for _, d := range datasets {
		for _, c := range d.header() {
			if d.ColumnDescriptions[c] == "" {
				t.Errorf("%s: column %s has no description", d.DatasetName, c)
			}
		}
	}
}

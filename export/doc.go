// Package export makes the exports of experiment data as Pioreactor lays
// them out: a zip file with, for each dataset asked for, a folder of CSVs
// (one per experiment and unit when partitioned) and its schema.json, and a
// manifest.json at the root. It holds the catalogue of exportable datasets
// and their rows, read from this node's *fsm.FSM, the formatting of their
// cells, the checking of a request, and the export dir (file names, pruning,
// free space). The api package's handlers call it; it knows nothing of HTTP.
package export

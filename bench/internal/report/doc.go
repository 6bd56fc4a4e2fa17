// Package report is what a wsbench run leaves behind: the Result (the
// --json file, whose field names are a contract), the table printed at the
// end of a run, the self-contained HTML report with its charts, and
// Compare, which sets the key figures of earlier runs side by side.
//
//	res, err := report.ReadResult("broadcast.json")
//	...
//	res.WriteTable(os.Stdout)
//	res.WriteHTML("broadcast.html")
//	report.Compare(os.Stdout, names, results)
//
// The functions and the Result methods may be called from any goroutine;
// a Result is not safe for concurrent modification.
package report

package main

import (
	"fmt"
	"io"
	"os"

	"github.com/bookhub/bookhub/loadtest"
)

// runCompare implements `bookhub-loadtest compare OLD.json NEW.json`: it
// prints the two reports' headline figures and their change. It exits 2
// on bad usage or an unreadable report.
func runCompare(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: bookhub-loadtest compare OLD.json NEW.json")
		return exitUsage
	}
	var reports [2]*loadtest.Report
	for i, path := range args {
		r, err := readReportFile(path)
		if err != nil {
			fmt.Fprintln(stderr, "bookhub-loadtest compare:", err)
			return exitUsage
		}
		reports[i] = r
	}
	if err := loadtest.WriteComparison(stdout, reports[0], reports[1]); err != nil {
		fmt.Fprintln(stderr, "bookhub-loadtest compare:", err)
		return exitFailed
	}
	return exitOK
}

func readReportFile(path string) (*loadtest.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open report: %w", err)
	}
	defer f.Close()
	r, err := loadtest.ReadReport(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat: 100 on every Linux architecture Go
// supports (sysconf(_SC_CLK_TCK) without cgo is not available; the kernel ABI fixes it).
const clockTicks = 100

// procStats is a sample of a process's memory and CPU.
type procStats struct {
	RSSKB      int64   // VmRSS
	PeakRSSKB  int64   // VmHWM: the high-water mark since the process started
	AnonKB     int64   // RssAnon: the process's own memory (heap, stacks, runtime)
	FileKB     int64   // RssFile: pages of mapped files (the program and its libraries), shared and reclaimable
	CPUSeconds float64 // utime + stime, all threads
	Threads    int64
}

// readProc samples /proc/<pid>/status and /proc/<pid>/stat.
func readProc(pid int) (procStats, error) {
	var st procStats
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			st.RSSKB = n
		case "VmHWM":
			st.PeakRSSKB = n
		case "RssAnon":
			st.AnonKB = n
		case "RssFile":
			st.FileKB = n
		case "Threads":
			st.Threads = n
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return st, err
	}
	st.CPUSeconds = cpu
	return st, nil
}

// parseStatCPU returns utime+stime in seconds from a /proc/<pid>/stat line. The command name (field 2) is in
// parentheses and may contain spaces, so fields are counted from the last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc stat line")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("bad /proc stat line: %d fields", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc stat times")
	}
	return float64(ut+st) / clockTicks, nil
}

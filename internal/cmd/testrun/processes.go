package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// processes is the command lines of the processes in process group pgid
// (each step runs in a group of its own), read from /proc; none where
// there is no /proc.
func processes(pgid int) [][]string {
	entries, err := os.ReadDir("/proc")
	if err != nil || pgid <= 0 {
		return nil
	}
	var out [][]string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || processGroup(stat) != pgid {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		out = append(out, strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"))
	}
	return out
}

// processGroup reads the process group from /proc/<pid>/stat: the fifth
// field, counted after the command's closing parenthesis (the command may
// hold spaces and parentheses itself).
func processGroup(stat []byte) int {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(stat[i+1:])) // state, ppid, pgrp, …
	if len(f) < 3 {
		return -1
	}
	n, err := strconv.Atoi(f[2])
	if err != nil {
		return -1
	}
	return n
}

// describe says what a step's processes are doing, in words: the packages
// being compiled, the binaries being linked, the tests and programs
// running. Processes that say nothing of interest (shells, make, go
// itself) are left out.
func describe(procs [][]string) []string {
	var compiling, linking, other []string
	seen := map[string]bool{}
	add := func(list *[]string, s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			*list = append(*list, s)
		}
	}
	for _, argv := range procs {
		base := filepath.Base(argv[0])
		switch {
		case base == "compile":
			add(&compiling, flagValue(argv, "-p"))
		case base == "link":
			// go test links <package>.test; go build a.out, renamed after.
			name := filepath.Base(flagValue(argv, "-o"))
			if name == "a.out" {
				name = "a program"
			}
			add(&linking, name)
		case base == "vet" || strings.HasSuffix(base, ".test") || base == "asm" || base == "cgo":
			// go test reports its tests itself; vet is quick
		case base == "apt-get" || base == "dpkg":
			add(&other, "installing Debian packages")
		case base == "npm" || (base == "node" && len(argv) > 1 && strings.Contains(argv[1], "npm")):
			add(&other, "npm")
		case base == "node" && len(argv) > 1 && strings.Contains(argv[1], "newman"):
			add(&other, "newman (the RealWorld suite)")
		case base == "staticcheck":
			add(&other, "analysing")
		case strings.HasPrefix(base, "qemu-"):
			add(&other, "the arm64 release under qemu-user")
		case base == "twin":
			add(&other, "the twin ("+strings.Join(argv[1:min(len(argv), 4)], " ")+")")
		}
	}
	var out []string
	if len(compiling) > 0 {
		out = append(out, "compiling "+strings.Join(compiling, ", "))
	}
	if len(linking) > 0 {
		out = append(out, "linking "+strings.Join(linking, ", "))
	}
	return append(out, other...)
}

// flagValue is the value after name in argv ("" if none).
func flagValue(argv []string, name string) string {
	for i, a := range argv {
		if a == name && i+1 < len(argv) {
			return argv[i+1]
		}
	}
	return ""
}

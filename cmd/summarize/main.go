// Command summarize runs Brief's pipeline without a window: scripted runs,
// benchmarks, tokenizing, synthetic checkpoints, and GPU machines without a
// display.
//
//	summarize [run] --model DIR --article FILE ...   summarize an article
//	summarize tokenize --model DIR < text            print {"ids":[...]}
//	summarize bench --model DIR --article FILE       benchmark the reference workload
//	summarize help (or -h)                           list the commands
//	summarize <command> -h                           flags of a command
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one subcommand. Each lives in its own file and registers
// itself in init, so files can be added without touching this one.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

func main() { os.Exit(dispatch(os.Args[1:], os.Stderr)) }

// dispatch runs the command args name (run when the first argument is a
// flag) and returns the exit status.
func dispatch(args []string, stderr io.Writer) int {
	if len(args) > 0 && isHelp(args[0]) {
		usage(stderr)
		return 0
	}
	name := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "summarize: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	if err := c.run(args); errors.Is(err, flag.ErrHelp) {
		return 0 // the flag package printed the command's flags
	} else if err != nil {
		fmt.Fprintf(stderr, "summarize %s: %v\n", name, err)
		return 1
	}
	return 0
}

// isHelp says whether a first argument asks for the command list (after a
// command name, -h gives that command's flags instead).
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

func usage(w io.Writer) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: summarize <command> [flags]; commands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
}

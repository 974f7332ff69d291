package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/pdsgo/pds/pds"
)

// The command tree, on urfave/cli v3 (as indigo's goat): groups (`pds account ...`), help on every command
// and group (-h, --help, `pds help ...`) to stdout with exit 0, shell completion (`pds completion bash`),
// unknown commands and bad flags as usage errors (exit 2, one line on stderr), runtime errors exit 1.
//
// Leaf commands keep their own flag.FlagSet parsing (flags before, between or after arguments, as the
// commands table's tests pin): urfave passes their arguments through (SkipFlagParsing), and lists the
// flags each defines in its help and completion, read by running the command with -h, which returns at flag
// parsing before anything else happens.

// groupUsage describes the command groups.
var groupUsage = map[string]string{
	"account": "operator commands on accounts, through the running server's admin API",
	"invite":  "invite codes, through the running server's admin API",
	"blobs":   "blob stores",
	"plc":     "this server's PLC identity",
}

// commandError carries the failing command's name to run, which prints it.
type commandError struct {
	name string
	err  error
}

func (e *commandError) Error() string { return e.name + ": " + e.err.Error() }
func (e *commandError) Unwrap() error { return e.err }

// usageError is a command-line mistake: exit 2, not 1.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func newApp(cl *cli) *ucli.Command {
	root := &ucli.Command{
		Name:                  "pds",
		Usage:                 "an AT Protocol Personal Data Server (docs: README.md, docs/deploy.md)",
		Description:           strings.TrimSpace(commonHelp),
		Version:               pds.Version,
		Writer:                cl.stdout,
		ErrWriter:             cl.stderr,
		Reader:                cl.stdin,
		EnableShellCompletion: true,
		// Exit codes are run's: urfave would call os.Exit.
		ExitErrHandler: func(context.Context, *ucli.Command, error) {},
		OnUsageError:   onUsageError,
		Action:         groupAction,
	}
	// `pds help account list`: urfave's own help command looks at one word only.
	root.Commands = append(root.Commands, &ucli.Command{
		Name: "help", Usage: "show the help of a command: pds help [COMMAND...]", ArgsUsage: "[COMMAND...]",
		SkipFlagParsing: true,
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			target := root
			for _, w := range cmd.Args().Slice() {
				next := target.Command(w)
				if next == nil {
					return &commandError{"pds help", usageError{fmt.Errorf("unknown command %q", strings.TrimSpace(target.FullName()+" "+w))}}
				}
				target = next
			}
			if target == root {
				return ucli.ShowRootCommandHelp(root)
			}
			return ucli.ShowSubcommandHelp(target)
		},
	})
	for i := range commands {
		c := &commands[i]
		words := strings.Fields(c.name)
		parent := root
		for _, w := range words[:len(words)-1] {
			g := parent.Command(w)
			if g == nil {
				g = &ucli.Command{Name: w, Usage: groupUsage[w], OnUsageError: onUsageError, Action: groupAction}
				parent.Commands = append(parent.Commands, g)
			}
			parent = g
		}
		parent.Commands = append(parent.Commands, leafCommand(cl, c, words[len(words)-1]))
	}
	return root
}

// groupAction runs for a group (or the root) with no known subcommand.
func groupAction(ctx context.Context, cmd *ucli.Command) error {
	if cmd.Args().Present() {
		return &commandError{cmd.FullName(), usageError{fmt.Errorf("unknown command %q", cmd.Args().First())}}
	}
	return &commandError{cmd.FullName(), usageError{errors.New("missing command")}}
}

func onUsageError(ctx context.Context, cmd *ucli.Command, err error, _ bool) error {
	return &commandError{cmd.FullName(), usageError{err}}
}

func leafCommand(cl *cli, c *command, name string) *ucli.Command {
	return &ucli.Command{
		Name:            name,
		Usage:           c.summary,
		ArgsUsage:       c.args,
		Description:     c.help,
		SkipFlagParsing: true,
		Flags:           describeFlags(c),
		OnUsageError:    onUsageError,
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			args := cmd.Args().Slice()
			if wantsHelp(args) {
				return ucli.ShowSubcommandHelp(cmd)
			}
			if c.name != "serve" && c.name != "health" && c.name != "doctor" {
				// Operator commands see the server's pds.env (PDS_ENV_FILE) too: admin password, port, data
				// directory. serve, health and doctor also take --env-file and read it themselves.
				if err := cl.withEnvFile(""); err != nil {
					return &commandError{cmd.FullName(), err}
				}
			}
			err := c.run(ctx, cl, args)
			if errors.Is(err, flag.ErrHelp) {
				return ucli.ShowSubcommandHelp(cmd)
			}
			if err != nil {
				return &commandError{cmd.FullName(), err}
			}
			return nil
		},
	}
}

// wantsHelp: -h, -help or --help before a "--".
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// describeFlags lists the flags a command defines, for its help and completion: the command runs with -h
// and no environment, and stops at flag parsing.
func describeFlags(c *command) []ucli.Flag {
	probe := &cli{stdout: io.Discard, stderr: io.Discard, stdin: strings.NewReader(""),
		getenv: func(string) string { return "" }}
	if err := c.run(context.Background(), probe, []string{"-h"}); !errors.Is(err, flag.ErrHelp) || probe.lastFlags == nil {
		return nil
	}
	var out []ucli.Flag
	probe.lastFlags.VisitAll(func(f *flag.Flag) {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			out = append(out, &ucli.BoolFlag{Name: f.Name, Usage: f.Usage})
			return
		}
		if v, ok := f.Value.(ucli.Value); ok {
			out = append(out, &ucli.GenericFlag{Name: f.Name, Usage: f.Usage, Value: v})
			return
		}
		out = append(out, &ucli.StringFlag{Name: f.Name, Usage: f.Usage, Value: f.DefValue})
	})
	return out
}

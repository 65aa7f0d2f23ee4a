// compose-validate loads a compose file the way `docker compose config` does: the
// compose-spec JSON schema, variable interpolation (${VAR:?...} fails when VAR is
// unset), merging and normalisation, through compose-go, the library docker compose is
// built on. It prints the resolved project as JSON, or the error, and exits non-zero.
// Used by tests/unit/test_deploy_compose.py where the docker compose plugin is absent.
//
//	go run ./deploy/tools/compose-validate docker-compose.yml
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-validate FILE [FILE...]")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(os.Args[1:], cli.WithOsEnv, cli.WithInterpolation(true))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

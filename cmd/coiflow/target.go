package main

import (
	"context"
	"errors"
	"flag"
	"os"

	"github.com/coiflow/coiflow/internal/opstarget"
)

// targetFlags choose where an operator command acts: the running local stack
// (default) or AWS.
type targetFlags struct {
	aws   *bool
	state *string
}

func addTargetFlags(fs *flag.FlagSet) targetFlags {
	return targetFlags{
		aws:   fs.Bool("aws", false, "act on AWS (default credential chain; TABLE_NAME, CRM_QUEUE_URL, SEND_QUEUE_URL, WEBHOOK_SECRET_ARN from the environment) instead of the local stack"),
		state: fs.String("state", "", "the running local system's local.json (default <repo>/.coiflow/local.json)"),
	}
}

// open returns the target; forceAWS selects AWS (an AWS queue URL was given).
func (f targetFlags) open(ctx context.Context, forceAWS bool) (*opstarget.Target, error) {
	if *f.aws || forceAWS {
		return opstarget.AWS(ctx, os.Getenv)
	}
	path := *f.state
	if path == "" {
		path = stateFile("")
	}
	if path == "" {
		return nil, errors.New("cannot find the repository's .coiflow/local.json: pass --state FILE, or --aws")
	}
	return opstarget.Local(path)
}

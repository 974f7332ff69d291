package oauth

import (
	"context"

	"github.com/pdsgo/pds/pds/oauth/scope"
)

// checkScope parses a requested scope and, when the provider has an include resolver, resolves its include:
// permission sets: a set that cannot be resolved fails the request (permission spec), rather than showing the
// person a consent for permissions nobody can read.
func (p *Provider) checkScope(ctx context.Context, s string) (*scope.Set, error) {
	set, err := scope.Parse(s)
	if err != nil {
		return nil, err
	}
	if p.cfg.IncludeResolver != nil && len(set.Includes()) > 0 {
		if err := set.Expand(ctx, p.cfg.IncludeResolver); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// describeScope is the consent page's list: plain words per scope token, with what a permission set grants.
func (p *Provider) describeScope(ctx context.Context, s string) []scope.Description {
	set, err := p.checkScope(ctx, s)
	if err != nil {
		// Checked at PAR; a set that stopped resolving since then is shown by name.
		if set, err = scope.Parse(s); err != nil {
			return []scope.Description{{Text: s}}
		}
	}
	return set.Descriptions()
}

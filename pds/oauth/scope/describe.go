package scope

import (
	"fmt"
	"strings"

	"github.com/bluesky-social/indigo/atproto/auth"
)

// Description is one line of a consent page: plain words, the scope token it comes from, and for a permission
// set the lines of what it grants (so a page can let the user expand them).
type Description struct {
	Text    string
	Scope   string
	Details []string
}

// Describe returns the consent-page lines for the scope, in plain words.
func (s *Set) Describe() []string {
	var out []string
	for _, d := range s.Descriptions() {
		out = append(out, d.Text)
	}
	return out
}

// Descriptions returns the consent-page lines with their scope tokens and, for include: sets that were
// expanded, the permissions each set grants.
func (s *Set) Descriptions() []Description {
	var out []Description
	add := func(scope, text string) { out = append(out, Description{Text: text, Scope: scope}) }
	for _, tok := range s.tokens {
		switch tok {
		case Atproto:
			add(tok, "Know which account you are (your DID)")
			continue
		case TransitionGeneric:
			add(tok, "Create, update and delete any of your records, upload files, and use other services on your behalf "+
				"(what an app password allows, without direct messages or account settings)")
			continue
		case TransitionChat:
			add(tok, "Read and send your direct messages (chat.bsky)")
			continue
		case TransitionEmail:
			add(tok, "Read your email address")
			continue
		}
		p, err := parsePermission(tok)
		if err != nil {
			add(tok, fmt.Sprintf("Unrecognized permission %q (grants nothing)", tok))
			continue
		}
		if p.Resource == "include" {
			out = append(out, s.describeInclude(tok, *p))
			continue
		}
		if text := describePermission(*p); text != "" {
			add(tok, text)
		}
	}
	return out
}

func (s *Set) describeInclude(tok string, p auth.Permission) Description {
	for _, e := range s.expanded {
		if e.include.NSID != p.NSID || e.include.Audience != p.Audience || e.set == nil {
			continue
		}
		text := p.NSID
		if e.set.Title != nil && *e.set.Title != "" {
			text = *e.set.Title
		}
		if e.set.Detail != nil && *e.set.Detail != "" {
			text += ": " + *e.set.Detail
		}
		d := Description{Text: text + " (" + p.NSID + ")", Scope: tok}
		for _, gp := range e.perms {
			if line := describePermission(gp); line != "" {
				d.Details = append(d.Details, line)
			}
		}
		return d
	}
	return Description{Text: "Permissions defined by " + p.NSID, Scope: tok}
}

// collectionNouns names the record types people know.
var collectionNouns = map[string]string{
	"app.bsky.feed.post":                "posts",
	"app.bsky.feed.like":                "likes",
	"app.bsky.feed.repost":              "reposts",
	"app.bsky.feed.threadgate":          "reply settings of your posts",
	"app.bsky.feed.postgate":            "quote settings of your posts",
	"app.bsky.feed.generator":           "feeds",
	"app.bsky.graph.follow":             "follows",
	"app.bsky.graph.block":              "blocks",
	"app.bsky.graph.list":               "lists",
	"app.bsky.graph.listitem":           "list members",
	"app.bsky.graph.listblock":          "list blocks",
	"app.bsky.graph.starterpack":        "starter packs",
	"app.bsky.graph.verification":       "verifications",
	"app.bsky.actor.profile":            "your profile",
	"app.bsky.actor.status":             "your status",
	"app.bsky.labeler.service":          "your labeler declaration",
	"chat.bsky.actor.declaration":       "your chat settings",
	"app.bsky.notification.declaration": "your notification settings",
}

func describePermission(p auth.Permission) string {
	switch p.Resource {
	case "repo":
		verbs := actionWords(p.Action)
		var what []string
		for _, c := range p.Collection {
			switch {
			case c == "*":
				what = append(what, "any of your records")
			case collectionNouns[c] != "":
				what = append(what, collectionNouns[c]+" ("+c+")")
			default:
				what = append(what, "records of type "+c)
			}
		}
		return verbs + " " + strings.Join(what, ", ")
	case "blob":
		var kinds []string
		for _, a := range p.Accept {
			switch strings.ToLower(a) {
			case "*/*":
				return "Upload files of any type"
			case "image/*":
				kinds = append(kinds, "images")
			case "video/*":
				kinds = append(kinds, "videos")
			case "audio/*":
				kinds = append(kinds, "audio")
			case "text/*":
				kinds = append(kinds, "text files")
			default:
				kinds = append(kinds, a+" files")
			}
		}
		return "Upload " + joinAnd(kinds)
	case "rpc":
		svc := "any service"
		if p.Audience != "*" {
			svc = "the service " + p.Audience
		}
		if len(p.Endpoint) == 1 && p.Endpoint[0] == "*" {
			return "Use any method of " + svc + " on your behalf"
		}
		return "Use " + joinAnd(p.Endpoint) + " on " + svc + " on your behalf"
	case "account":
		manage := len(p.Action) > 0 && p.Action[0] == ActionManage
		switch p.Attribute {
		case "email":
			if manage {
				return "Read and change your email address"
			}
			return "Read your email address"
		case "repo":
			if manage {
				return "Replace your repository with an imported one (account migration)"
			}
			return "" // read on repo grants nothing
		case "status":
			if manage {
				return "Activate or deactivate your account"
			}
			return "See whether your account is active"
		}
	case "identity":
		if p.Attribute == "*" {
			return "Take full control of your identity (DID document and handle)"
		}
		return "Change your handle"
	}
	return ""
}

func actionWords(actions []string) string {
	if len(actions) == 0 {
		actions = []string{ActionCreate, ActionUpdate, ActionDelete}
	}
	var words []string
	for _, a := range []string{ActionCreate, ActionUpdate, ActionDelete} {
		for _, b := range actions {
			if a == b {
				words = append(words, a)
				break
			}
		}
	}
	s := joinAnd(words)
	return strings.ToUpper(s[:1]) + s[1:]
}

// joinAnd: "a", "a and b", "a, b and c".
func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

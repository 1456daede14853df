package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/telltale-dev/telltale/annotator/changelog"
	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/annotator/chat/irc"
	"github.com/telltale-dev/telltale/annotator/chat/matrix"
	"github.com/telltale-dev/telltale/annotator/chat/slack"
	"github.com/telltale-dev/telltale/collector/auth"
	"github.com/telltale-dev/telltale/collector/chart"
	"github.com/telltale-dev/telltale/dashboards/board"
	"github.com/telltale-dev/telltale/secret"
)

// addChat builds the chat networks of -chat.config, -chat.irc,
// -chat.matrix and -chat.slack and adds them to opts.Targets, so every
// change event is queued for them in the change log's outbox. Call it
// from addChanges before changelog.Open, and startChat after it. Slack
// bots with a signing secret get their Events API endpoint at
// /api/v1/chat/slack/<network>/events (checked by signature, not token).
func (a *app) addChat(opts *changelog.Options) error {
	cfg := &chat.Config{}
	if a.cfg.chatConfig != "" {
		c, err := chat.LoadConfig(a.cfg.chatConfig)
		if err != nil {
			return err
		}
		cfg = c
	} else if err := cfg.Check(); err != nil {
		return fmt.Errorf("BUG: empty chat config: %w", err)
	}
	for _, f := range []struct {
		flag string
		vals []string
		set  func(*chat.NetworkConfig, string)
	}{
		{"-chat.irc", a.cfg.chatIRC, func(n *chat.NetworkConfig, v string) { n.IRC = v }},
		{"-chat.matrix", a.cfg.chatMatrix, func(n *chat.NetworkConfig, v string) { n.Matrix = v }},
		{"-chat.slack", a.cfg.chatSlack, func(n *chat.NetworkConfig, v string) { n.Slack = v }},
	} {
		for i, v := range f.vals {
			var n chat.NetworkConfig
			f.set(&n, v)
			n.Name = strings.TrimPrefix(f.flag, "-chat.")
			if i > 0 {
				n.Name += fmt.Sprint("-", i+1)
			}
			cfg.Networks = append(cfg.Networks, n)
		}
	}
	if len(cfg.Networks) == 0 {
		return nil
	}
	if err := cfg.Check(); err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	if err := cfg.CheckRoutes(); err != nil {
		return fmt.Errorf("-chat.config: %w", err)
	}
	var nets []chat.Attached
	for _, nc := range cfg.Networks {
		at, err := a.chatNetwork(nc)
		if err != nil {
			return fmt.Errorf("chat network %s: %w", nc.Name, err)
		}
		nets = append(nets, at)
	}
	console := a.externalURL()
	cs, err := chat.New(chat.Options{
		Config:     cfg,
		Networks:   nets,
		Authorize:  func(token string) bool { return a.auth.HasScope(token, auth.ScopeDeploy) },
		Graph:      a.chatGraph(console),
		ChangesURL: console + "/#/d/" + board.UIDDeploys,
		Logger:     a.log,
		Metrics:    a.set,
	})
	if err != nil {
		return err
	}
	a.chat = cs
	opts.Targets = append(opts.Targets, cs.Targets()...)
	for _, n := range nets {
		a.log.Info("chat network on", "component", "chat", "network", n.Config.Name, "kind", n.Config.Kind(), "channels", strings.Join(n.Channels, ","))
	}
	return nil
}

// startChat hands the opened change log to the chat service and runs it.
func (a *app) startChat(svc *changelog.Service) {
	if a.chat == nil {
		return
	}
	a.chat.SetLog(svc)
	a.workers = append(a.workers, a.chat.Run)
}

// chatNetwork builds one network from its config entry.
func (a *app) chatNetwork(nc chat.NetworkConfig) (chat.Attached, error) {
	at := chat.Attached{Config: nc}
	kind, raw := nc.KindURL()
	switch kind {
	case chat.KindIRC:
		o, err := irc.ParseURL(raw)
		if err != nil {
			return at, err
		}
		pw, err := secret.FileOrEnv(nc.PasswordFile, "TELLTALE_IRC_PASSWORD", nc.Name+": password_file", "the IRC password")
		if err != nil {
			return at, err
		}
		if pw != "" {
			o.Password = pw
		}
		o.Name, o.Logger, o.Metrics = nc.Name, a.log, a.set
		o.Channels = append(o.Channels, nc.Channels...)
		c, err := irc.New(o)
		if err != nil {
			return at, err
		}
		at.Network, at.Channels = c, o.Channels
	case chat.KindMatrix:
		hs, rooms, err := matrix.ParseURL(raw)
		if err != nil {
			return at, err
		}
		token, err := secret.FileOrEnv(nc.TokenFile, "TELLTALE_MATRIX_TOKEN", nc.Name+": token_file", "the Matrix access token")
		if err != nil {
			return at, err
		}
		rooms = append(rooms, nc.Channels...)
		c, err := matrix.New(matrix.Options{Name: nc.Name, Homeserver: hs, Token: token, Rooms: rooms, Logger: a.log})
		if err != nil {
			return at, err
		}
		at.Network, at.Channels = c, rooms
	case chat.KindSlack:
		if strings.HasPrefix(raw, "https://") || strings.HasPrefix(raw, "http://") {
			w, err := slack.NewWebhook(raw, nil)
			if err != nil {
				return at, err
			}
			at.Network, at.Channels = w, []string{"webhook"}
			return at, nil
		}
		token, err := secret.FileOrEnv(nc.TokenFile, "TELLTALE_SLACK_TOKEN", nc.Name+": token_file", "the Slack bot token")
		if err != nil {
			return at, err
		}
		sign, err := secret.FileOrEnv(nc.SigningSecretFile, "TELLTALE_SLACK_SIGNING_SECRET", nc.Name+": signing_secret_file", "the Slack signing secret")
		if err != nil {
			return at, err
		}
		api := os.Getenv("TELLTALE_SLACK_API") // tests point it at a fake Slack
		b, err := slack.NewBot(slack.BotOptions{Token: token, API: api, SigningSecret: sign})
		if err != nil {
			return at, err
		}
		chans := append(strings.Split(raw, ","), nc.Channels...)
		for i := range chans {
			chans[i] = strings.TrimSpace(chans[i])
		}
		at.Network, at.Channels = b, chans
		if sign != "" {
			a.mux.Handle("/api/v1/chat/slack/"+nc.Name+"/events", b.EventsHandler())
		}
	}
	return at, nil
}

// graphLines bounds how many series a PromQL !graph shows.
const graphLines = 3

// chatGraph answers !graph: a panel title of the built-in dashboards
// (optionally followed by its variables, "Request rate by route
// service=web") gets a console link to its dashboard; anything else is
// evaluated as PromQL now, answering with up to three series' values and
// a link (Grafana Explore with -grafana.url, else the query API). On the
// networks that post images both are followed by a PNG of the last hour
// with the change markers, drawn as GET /api/v1/render draws it; when
// drawing fails the text goes alone. a.render is read when a command
// runs, after addRender.
func (a *app) chatGraph(console string) func(context.Context, string) (chat.Answer, error) {
	return func(ctx context.Context, arg string) (chat.Answer, error) {
		title, vars := splitGraphVars(arg)
		if p, ok := findPanel(a.render.panels, title); ok {
			ans := chat.Answer{Lines: []string{fmt.Sprintf("%s (dashboard %s): %s/#/d/%s", p.title, p.board, console, p.uid)}}
			if len(p.exprs) > 0 {
				form := url.Values{"panel": {p.title}}
				for k, v := range vars {
					form.Set("var-"+k, v)
				}
				ans.Image = a.chatImage(form)
			}
			return ans, nil
		}
		now := time.Now()
		q, err := a.query.Engine().NewInstantQuery(ctx, a.query.Queryable(), nil, arg, now)
		if err != nil {
			return chat.Answer{}, fmt.Errorf("%q is neither a panel title nor PromQL: %v", chat.ClipText(arg, 80), err)
		}
		defer q.Close()
		res := q.Exec(ctx)
		if res.Err != nil {
			return chat.Answer{}, fmt.Errorf("query failed: %v", res.Err)
		}
		var out []string
		switch v := res.Value.(type) {
		case promql.Vector:
			sort.Slice(v, func(i, j int) bool { return v[i].F > v[j].F })
			for i, s := range v {
				if i == graphLines {
					out = append(out, fmt.Sprintf("… and %d more series", len(v)-i))
					break
				}
				out = append(out, fmt.Sprintf("%s %g", s.Metric.String(), s.F))
			}
			if len(v) == 0 {
				out = append(out, "no data now")
			}
		case promql.Scalar:
			out = append(out, fmt.Sprintf("%g", v.V))
		default:
			out = append(out, "a "+string(res.Value.Type())+" result; open the link")
		}
		link := console + "/api/v1/query?query=" + url.QueryEscape(arg)
		if a.cfg.grafanaURL != "" {
			panes, _ := json.Marshal(map[string]any{"a": map[string]any{"datasource": board.DatasourceUID,
				"queries": []map[string]any{{"refId": "A", "expr": arg, "datasource": map[string]string{"type": "prometheus", "uid": board.DatasourceUID}}},
				"range":   map[string]string{"from": "now-1h", "to": "now"}}})
			link = strings.TrimRight(a.cfg.grafanaURL, "/") + "/explore?schemaVersion=1&orgId=1&panes=" + url.QueryEscape(string(panes))
		}
		return chat.Answer{Lines: append(out, link), Image: a.chatImage(url.Values{"query": {arg}})}, nil
	}
}

// splitGraphVars splits "Request rate service=web env=prod" into the
// title and its trailing name=value variables; words that are not valid
// variables stay in the title.
func splitGraphVars(arg string) (string, map[string]string) {
	words := strings.Fields(arg)
	vars := map[string]string{}
	for len(words) > 1 {
		k, v, ok := strings.Cut(words[len(words)-1], "=")
		if _, dup := vars[k]; !ok || dup || v == "" || checkVar(k, v) != nil || len(vars) == renderMaxVars {
			break
		}
		vars[k] = v
		words = words[:len(words)-1]
	}
	if len(vars) == 0 {
		return arg, nil
	}
	return strings.Join(words, " "), vars
}

// chatImage draws, when the bot asks (on networks that post images), the
// chart GET /api/v1/render draws for form over the hour up to then.
func (a *app) chatImage(form url.Values) func(context.Context) (chat.Image, error) {
	return func(ctx context.Context) (chat.Image, error) {
		r, err := parseRenderRequest(form, time.Now())
		var c *chart.Chart
		if err == nil {
			c, err = a.render.draw(ctx, r)
		}
		var buf bytes.Buffer
		if err == nil {
			err = c.WritePNG(&buf)
		}
		if err != nil {
			a.renderOutcome("chat", "error")
			return chat.Image{}, err
		}
		a.renderOutcome("chat", "ok")
		w, h := c.Size()
		return chat.Image{PNG: buf.Bytes(), Name: "graph.png", Title: c.Title, Width: w, Height: h}, nil
	}
}

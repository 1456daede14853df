package irc

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ParseURL reads the network part of -chat.irc:
//
//	irc[s]://[nick[:password]@]host[:port]/#channel[,#other][?nick=&user=&realname=&auth=sasl|pass]
//
// ircs:// connects with TLS (default port 6697, else 6667). The channels
// follow the path; a "#" that starts the URL's fragment counts too, so
// irc://127.0.0.1:6667/#ops needs no escaping. A password (in the URL, or
// given later in Options.Password) logs in with SASL PLAIN unless
// auth=pass asks for a server password (PASS). The default nick is
// "telltale".
func ParseURL(raw string) (Options, error) {
	var o Options
	u, err := url.Parse(raw)
	if err != nil {
		return o, fmt.Errorf("%q is not a URL: %w; want irc://host:6667/#channel", raw, err)
	}
	port := "6667"
	switch u.Scheme {
	case "irc":
	case "ircs":
		port = "6697"
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	default:
		return o, fmt.Errorf("%q: scheme %q: want irc:// or ircs:// (TLS)", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return o, fmt.Errorf("%q has no host; want irc://host:6667/#channel", raw)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	o.Addr = net.JoinHostPort(u.Hostname(), port)
	o.Nick = "telltale"
	if u.User != nil {
		if n := u.User.Username(); n != "" {
			o.Nick = n
		}
		o.Password, _ = u.User.Password()
	}
	chans := strings.TrimPrefix(u.Path, "/")
	q := u.Query()
	if frag, query, ok := strings.Cut(u.Fragment, "?"); ok {
		// irc://host/#ops?nick=x: the "#" made the query part of the fragment.
		u.Fragment = frag
		fq, err := url.ParseQuery(query)
		if err != nil {
			return o, fmt.Errorf("%q: parameters: %w", raw, err)
		}
		for k, v := range fq {
			q[k] = append(q[k], v...)
		}
	}
	if u.Fragment != "" {
		chans += "#" + u.Fragment
	}
	for _, ch := range strings.Split(chans, ",") {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		if !isChannel(ch) {
			ch = "#" + ch
		}
		o.Channels = append(o.Channels, ch)
	}
	if len(o.Channels) == 0 {
		return o, fmt.Errorf("%q names no channel; want irc://host:6667/#channel", raw)
	}
	for k := range q {
		switch k {
		case "nick", "user", "realname", "auth":
		default:
			return o, fmt.Errorf("%q: unknown parameter %q; known: nick, user, realname, auth", raw, k)
		}
	}
	if v := q.Get("nick"); v != "" {
		o.Nick = v
	}
	o.User, o.RealName = q.Get("user"), q.Get("realname")
	switch q.Get("auth") {
	case "", "sasl":
	case "pass":
		o.ServerPassword = true
	default:
		return o, fmt.Errorf("%q: auth=%q: want sasl (SASL PLAIN) or pass (server password)", raw, q.Get("auth"))
	}
	if !validNick(o.Nick) {
		return o, fmt.Errorf("%q: nick %q is not a valid IRC nick", raw, o.Nick)
	}
	for _, ch := range o.Channels {
		if !validChannel(ch) {
			return o, fmt.Errorf("%q: channel %q: want # and a name without spaces or commas", raw, ch)
		}
	}
	return o, nil
}

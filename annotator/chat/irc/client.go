package irc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/telltale-dev/telltale/annotator/chat"
	"github.com/telltale-dev/telltale/retry"
)

// Options configures a Client. Addr, Nick and Channels are required.
type Options struct {
	// Name names the network in logs and metrics.
	Name string
	// Addr is the server's host:port.
	Addr string
	// TLS, when set, connects with TLS (ircs://); ServerName defaults to
	// Addr's host.
	TLS *tls.Config
	// Nick is the bot's nick; taken nicks get "_" appended. User and
	// RealName default to Nick and "Telltale".
	Nick, User, RealName string
	// Password, when set, logs in with SASL PLAIN as SASLUser (default
	// User), or with PASS when ServerPassword is set.
	Password       string
	SASLUser       string
	ServerPassword bool
	// Channels are joined after registration and after every reconnect.
	Channels []string
	// Dial opens the TCP connection; default a net.Dialer. Tests use it
	// to hold a reconnect.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// MinBackoff and MaxBackoff bound the reconnect backoff (1s, 2m).
	MinBackoff, MaxBackoff time.Duration
	// LineBurst lines go out at once, then one every LineEvery (5, 1s):
	// the flood control that keeps the server from throttling or
	// disconnecting the bot.
	LineBurst int
	LineEvery time.Duration
	// Keepalive is how long a silent connection lasts before a PING,
	// and again before it is dropped (default 2m).
	Keepalive time.Duration
	Logger    *slog.Logger // nil means slog.Default()
	Metrics   *metrics.Set // default a new set
}

// Client is a persistent IRC client connection: it registers (SASL PLAIN
// or PASS), joins its channels, answers PINGs, reconnects with backoff,
// paces what it writes, and hands channel messages to the chat package.
// Safe for concurrent use.
type Client struct {
	opts   Options
	logger *slog.Logger
	flood  *bucket

	mu      sync.Mutex
	sess    *session      // nil while disconnected
	changed chan struct{} // closed and replaced on every session state change
	token   int64

	connects, disconnects, linesSent *metrics.Counter
}

// New checks opts and returns a Client; Run connects it.
func New(opts Options) (*Client, error) {
	if opts.Addr == "" || opts.Nick == "" || len(opts.Channels) == 0 {
		return nil, errors.New("irc: server address, nick and at least one channel are required, e.g. irc://127.0.0.1:6667/#ops")
	}
	if !validNick(opts.Nick) {
		return nil, fmt.Errorf("irc: nick %q: want 1-30 characters of letters, digits and -[]\\`^{}|_ not starting with a digit or -", opts.Nick)
	}
	for _, ch := range opts.Channels {
		if !validChannel(ch) {
			return nil, fmt.Errorf("irc: channel %q: want # or & and a name without spaces, commas or control characters, e.g. #ops", ch)
		}
	}
	if opts.User == "" {
		opts.User = opts.Nick
	}
	if opts.RealName == "" {
		opts.RealName = "Telltale"
	}
	if opts.SASLUser == "" {
		opts.SASLUser = opts.User
	}
	if opts.Name == "" {
		opts.Name = "irc"
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(2*time.Minute, opts.MinBackoff)
	}
	if opts.LineBurst <= 0 {
		opts.LineBurst = 5
	}
	if opts.LineEvery <= 0 {
		opts.LineEvery = time.Second
	}
	if opts.Keepalive <= 0 {
		opts.Keepalive = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.NewSet()
	}
	if opts.Dial == nil {
		var d net.Dialer
		opts.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	n := opts.Name
	return &Client{
		opts:        opts,
		logger:      opts.Logger.With("component", "chat", "network", n),
		flood:       &bucket{burst: opts.LineBurst, every: opts.LineEvery, tokens: float64(opts.LineBurst)},
		changed:     make(chan struct{}),
		connects:    opts.Metrics.GetOrCreateCounter(fmt.Sprintf(`telltale_chat_irc_connects_total{network=%q}`, n)),
		disconnects: opts.Metrics.GetOrCreateCounter(fmt.Sprintf(`telltale_chat_irc_disconnects_total{network=%q}`, n)),
		linesSent:   opts.Metrics.GetOrCreateCounter(fmt.Sprintf(`telltale_chat_irc_lines_sent_total{network=%q}`, n)),
	}, nil
}

// Limits: one line per message of at most 400 bytes (what is left of 512
// after the prefix the server adds), a batched message every 2s.
func (c *Client) Limits() chat.Limits {
	return chat.Limits{MaxBytes: 400, Every: 2 * time.Second, Linger: time.Second}
}

// Run keeps the client connected until ctx is done, handing channel
// messages to hear (on the read loop: hear must not block). It returns nil
// once ctx is done.
func (c *Client) Run(ctx context.Context, hear func(chat.Message)) error {
	attempt := 0
	for {
		start := time.Now()
		registered, err := c.session(ctx, hear)
		if ctx.Err() != nil {
			return nil
		}
		c.disconnects.Inc()
		attempt++
		if registered && time.Since(start) > c.opts.MaxBackoff {
			attempt = 1 // it ran well for a while: start the backoff over
		}
		wait := retry.Backoff(attempt, c.opts.MinBackoff, c.opts.MaxBackoff)
		if errors.Is(err, chat.ErrRefused) {
			wait = c.opts.MaxBackoff
			c.logger.Error("irc server refused the login; fix the nick or password", "addr", c.opts.Addr, "retry_in", wait, "err", err)
		} else {
			c.logger.Warn("irc connection lost; reconnecting", "addr", c.opts.Addr, "retry_in", wait, "err", err)
		}
		if retry.Sleep(ctx, wait) != nil {
			return nil
		}
	}
}

// session is one connection: registration, joins, the writer and the
// PONGs that confirm sends.
type session struct {
	c      *Client
	conn   net.Conn
	out    chan []outLine
	dead   chan struct{} // closed when the session ends
	mu     sync.Mutex
	nick   string
	joined map[string]bool   // by lower-cased channel
	failed map[string]string // channels the server refused to let us join
	pongs  map[string]chan struct{}
}

// outLine is a line to write; free lines (registration, PONG) skip the
// flood control.
type outLine struct {
	data []byte
	free bool
}

// errClosed ends a session from inside.
var errClosed = errors.New("connection closed")

func (c *Client) session(ctx context.Context, hear func(chat.Message)) (registered bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := c.opts.Dial(dctx, c.opts.Addr)
	if err == nil && c.opts.TLS != nil {
		cfg := c.opts.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(c.opts.Addr)
		}
		tc := tls.Client(conn, cfg)
		if err = tc.HandshakeContext(dctx); err != nil {
			conn.Close()
		}
		conn = tc
	}
	cancel()
	if err != nil {
		return false, fmt.Errorf("cannot connect to %s: %w", c.opts.Addr, err)
	}
	c.connects.Inc()
	s := &session{c: c, conn: conn, out: make(chan []outLine, 64), dead: make(chan struct{}), nick: c.opts.Nick,
		joined: map[string]bool{}, failed: map[string]string{}, pongs: map[string]chan struct{}{}}
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.write(sctx) })
	wg.Go(func() {
		<-sctx.Done()
		conn.Close() // ends the read loop on shutdown or a writer error
	})
	defer func() {
		c.mu.Lock()
		if c.sess == s {
			c.sess = nil
		}
		c.notifyLocked()
		c.mu.Unlock()
		close(s.dead)
		stop()
		wg.Wait()
	}()
	s.register()
	registered, err = s.read(sctx, hear)
	if ctx.Err() == nil && sctx.Err() != nil && err == nil {
		err = errClosed
	}
	return registered, err
}

// notifyLocked wakes everyone waiting for a state change. Call with c.mu
// held.
func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (s *session) register() {
	o := s.c.opts
	var lines []Line
	if o.Password != "" && !o.ServerPassword {
		lines = append(lines, Line{Command: "CAP", Params: []string{"LS", "302"}})
	}
	if o.Password != "" && o.ServerPassword {
		lines = append(lines, Line{Command: "PASS", Params: []string{o.Password}})
	}
	lines = append(lines, Line{Command: "NICK", Params: []string{s.nick}},
		Line{Command: "USER", Params: []string{o.User, "0", "*", o.RealName}})
	s.sendFree(lines...)
}

// sendFree queues lines that skip the flood control. It never blocks:
// the queue holds the few such lines a session needs; a server that makes
// us answer faster than we write is dropped.
func (s *session) sendFree(lines ...Line) {
	var batch []outLine
	for _, l := range lines {
		b, err := l.Encode()
		if err != nil {
			s.c.logger.Error("BUG: cannot encode irc line", "command", l.Command, "err", err)
			continue
		}
		batch = append(batch, outLine{data: b, free: true})
	}
	select {
	case s.out <- batch:
	default:
		s.conn.Close()
	}
}

// write writes queued lines, pacing the ones that are not free.
func (s *session) write(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-s.out:
			for _, l := range batch {
				if !l.free && s.c.flood.wait(ctx) != nil {
					return
				}
				s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
				if _, err := s.conn.Write(l.data); err != nil {
					s.conn.Close()
					return
				}
				s.c.linesSent.Inc()
			}
		}
	}
}

// maxReadLine bounds a line read from the server (tags included).
const maxReadLine = maxTagBytes + MaxLineBytes + 2

func (s *session) read(ctx context.Context, hear func(chat.Message)) (registered bool, err error) {
	c := s.c
	r := bufio.NewReaderSize(s.conn, maxReadLine)
	pinged := false
	deadline := time.Now().Add(c.opts.Keepalive)
	for {
		s.conn.SetReadDeadline(deadline)
		raw, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Too long for any server to send: skip to its end.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if pinged || !registered {
				return registered, fmt.Errorf("irc server %s silent for %s", c.opts.Addr, c.opts.Keepalive)
			}
			pinged = true
			s.sendFree(Line{Command: "PING", Params: []string{"keepalive"}})
			deadline = time.Now().Add(c.opts.Keepalive)
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return registered, errClosed
			}
			return registered, err
		}
		pinged = false
		deadline = time.Now().Add(c.opts.Keepalive)
		l, perr := ParseLine(string(bytes.TrimRight(raw, "\r\n")))
		if perr != nil {
			continue // a server bug; nothing to act on
		}
		done, err := s.handle(l, &registered, hear)
		if err != nil || done {
			return registered, err
		}
	}
}

// handle acts on one line from the server. done ends the session.
func (s *session) handle(l Line, registered *bool, hear func(chat.Message)) (done bool, err error) {
	c := s.c
	o := c.opts
	p := func(i int) string {
		if i < len(l.Params) {
			return l.Params[i]
		}
		return ""
	}
	switch l.Command {
	case "PING":
		s.sendFree(Line{Command: "PONG", Params: l.Params})
	case "PONG":
		s.mu.Lock()
		if ch, ok := s.pongs[p(len(l.Params)-1)]; ok {
			close(ch)
			delete(s.pongs, p(len(l.Params)-1))
		}
		s.mu.Unlock()
	case "ERROR":
		return true, fmt.Errorf("irc server closed the link: %s", p(0))
	case "CAP":
		switch strings.ToUpper(p(1)) {
		case "LS":
			caps := p(len(l.Params) - 1)
			if p(2) == "*" { // more LS lines follow
				if hasCap(caps, "sasl") {
					s.sendFree(Line{Command: "CAP", Params: []string{"REQ", "sasl"}})
				}
				return false, nil
			}
			if !hasCap(caps, "sasl") {
				return true, fmt.Errorf("%w: irc server %s offers no SASL (CAP LS: %q): drop the password, or set auth=pass in the URL for a server password", chat.ErrRefused, o.Addr, caps)
			}
			s.sendFree(Line{Command: "CAP", Params: []string{"REQ", "sasl"}})
		case "ACK":
			s.sendFree(Line{Command: "AUTHENTICATE", Params: []string{"PLAIN"}})
		case "NAK":
			return true, fmt.Errorf("%w: irc server %s refused the SASL capability", chat.ErrRefused, o.Addr)
		}
	case "AUTHENTICATE":
		if p(0) == "+" {
			payload := base64.StdEncoding.EncodeToString([]byte(o.SASLUser + "\x00" + o.SASLUser + "\x00" + o.Password))
			var lines []Line
			for len(payload) >= 400 {
				lines = append(lines, Line{Command: "AUTHENTICATE", Params: []string{payload[:400]}})
				payload = payload[400:]
			}
			if payload == "" {
				payload = "+"
			}
			s.sendFree(append(lines, Line{Command: "AUTHENTICATE", Params: []string{payload}})...)
		}
	case "903": // RPL_SASLSUCCESS
		s.sendFree(Line{Command: "CAP", Params: []string{"END"}})
	case "902", "904", "905", "906", "908": // SASL failed
		return true, fmt.Errorf("%w: SASL login as %q failed: %s", chat.ErrRefused, o.SASLUser, p(len(l.Params)-1))
	case "464": // ERR_PASSWDMISMATCH
		return true, fmt.Errorf("%w: irc server password refused: %s", chat.ErrRefused, p(len(l.Params)-1))
	case "432", "433", "436": // nick erroneous or in use
		if *registered {
			return false, nil
		}
		s.mu.Lock()
		if len(s.nick) >= 30 {
			s.mu.Unlock()
			return true, fmt.Errorf("%w: no free nick like %q on %s", chat.ErrRefused, o.Nick, o.Addr)
		}
		s.nick += "_"
		nick := s.nick
		s.mu.Unlock()
		s.sendFree(Line{Command: "NICK", Params: []string{nick}})
	case "001": // RPL_WELCOME
		*registered = true
		s.mu.Lock()
		s.nick = p(0)
		s.mu.Unlock()
		c.mu.Lock()
		c.sess = s
		c.notifyLocked()
		c.mu.Unlock()
		c.logger.Info("irc connected", "addr", o.Addr, "nick", p(0))
		s.sendFree(Line{Command: "JOIN", Params: []string{strings.Join(o.Channels, ",")}})
	case "JOIN":
		if !s.isMe(Nick(l.Prefix)) {
			return false, nil
		}
		s.setJoined(p(0), true, "")
	case "KICK", "PART":
		who := Nick(l.Prefix)
		if l.Command == "KICK" {
			who = p(1)
		}
		if s.isMe(who) {
			s.setJoined(p(0), false, "")
			c.logger.Warn("irc bot left a channel; rejoining", "channel", p(0), "by", Nick(l.Prefix), "reason", p(2))
			s.sendFree(Line{Command: "JOIN", Params: []string{p(0)}})
		}
	case "NICK":
		if s.isMe(Nick(l.Prefix)) {
			s.mu.Lock()
			s.nick = p(0)
			s.mu.Unlock()
		}
	case "403", "405", "471", "473", "474", "475", "476", "477": // cannot join
		s.setJoined(p(1), false, l.Command+" "+p(len(l.Params)-1))
		c.logger.Error("irc server refused to let the bot join", "channel", p(1), "numeric", l.Command, "reason", p(len(l.Params)-1))
	case "PRIVMSG":
		target, text := p(0), p(1)
		if !isChannel(target) || s.isMe(Nick(l.Prefix)) || strings.HasPrefix(text, "\x01") {
			return false, nil
		}
		hear(chat.Message{Channel: target, User: l.Prefix, Name: Nick(l.Prefix), Text: stripFormatting(text)})
	}
	return false, nil
}

func (s *session) isMe(nick string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.EqualFold(nick, s.nick)
}

func (s *session) setJoined(channel string, joined bool, failure string) {
	k := strings.ToLower(channel)
	s.mu.Lock()
	s.joined[k] = joined
	if failure != "" {
		s.failed[k] = failure
	} else {
		delete(s.failed, k)
	}
	s.mu.Unlock()
	s.c.mu.Lock()
	s.c.notifyLocked()
	s.c.mu.Unlock()
}

// Send posts text to channel, one PRIVMSG per line (a line too long for
// IRC is split), and returns once the server answered a PING sent after
// them: the server has taken the lines. It waits while the client is
// disconnected or not in the channel yet. An error means the lines may
// or may not have reached the channel (the connection dropped before the
// PONG); the outbox then sends them again.
func (c *Client) Send(ctx context.Context, channel, text string) error {
	if !validChannel(channel) {
		return fmt.Errorf("%w: %q is not an IRC channel", chat.ErrRejected, channel)
	}
	s, err := c.ready(ctx, channel)
	if err != nil {
		return err
	}
	s.mu.Lock()
	budget := MaxLineBytes - 2 - len("PRIVMSG  :") - len(channel) - (len(s.nick) + 77) // the prefix the server prepends
	c.mu.Lock()
	c.token++
	token := "tt" + strconv.FormatInt(c.token, 10)
	c.mu.Unlock()
	pong := make(chan struct{})
	s.pongs[token] = pong
	s.mu.Unlock()
	var batch []outLine
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		for _, part := range splitBytes(line, budget) {
			b, err := Line{Command: "PRIVMSG", Params: []string{channel, part}}.Encode()
			if err != nil {
				return fmt.Errorf("%w: %v", chat.ErrRejected, err)
			}
			batch = append(batch, outLine{data: b})
		}
	}
	ping, _ := Line{Command: "PING", Params: []string{token}}.Encode()
	batch = append(batch, outLine{data: ping, free: true})
	select {
	case s.out <- batch:
	case <-s.dead:
		return fmt.Errorf("irc connection to %s lost before sending", c.opts.Addr)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-pong:
		return nil
	case <-s.dead:
		return fmt.Errorf("irc connection to %s lost before the server confirmed the message", c.opts.Addr)
	case <-ctx.Done():
		return fmt.Errorf("irc server %s did not confirm the message: %w", c.opts.Addr, ctx.Err())
	}
}

// ready waits for a session that is in channel.
func (c *Client) ready(ctx context.Context, channel string) (*session, error) {
	k := strings.ToLower(channel)
	for {
		c.mu.Lock()
		s, changed := c.sess, c.changed
		c.mu.Unlock()
		if s != nil {
			s.mu.Lock()
			joined, failure := s.joined[k], s.failed[k]
			s.mu.Unlock()
			if joined {
				return s, nil
			}
			if failure != "" {
				return nil, fmt.Errorf("%w: the irc server does not let the bot join %s: %s", chat.ErrRejected, channel, failure)
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if s == nil {
				return nil, fmt.Errorf("not connected to irc server %s: %w", c.opts.Addr, ctx.Err())
			}
			return nil, fmt.Errorf("not in %s yet: %w", channel, ctx.Err())
		}
	}
}

// splitBytes cuts s into parts of at most n bytes on rune boundaries.
func splitBytes(s string, n int) []string {
	if s == "" {
		return nil
	}
	var out []string
	for len(s) > n {
		i := n
		for i > 0 && s[i]&0xC0 == 0x80 {
			i--
		}
		if i == 0 {
			i = n
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return append(out, s)
}

func hasCap(caps, name string) bool {
	for _, c := range strings.Fields(caps) {
		if c == name || strings.HasPrefix(c, name+"=") {
			return true
		}
	}
	return false
}

func isChannel(s string) bool { return s != "" && strings.ContainsRune("#&+!", rune(s[0])) }

func validChannel(s string) bool {
	if len(s) < 2 || len(s) > 64 || !isChannel(s) {
		return false
	}
	return !strings.ContainsAny(s, " ,\x00\x07\r\n")
}

func validNick(n string) bool {
	if n == "" || len(n) > 30 || isDigit(n[0]) || n[0] == '-' {
		return false
	}
	for i := 0; i < len(n); i++ {
		b := n[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || isDigit(b) || strings.IndexByte("-[]\\`^{}|_", b) >= 0) {
			return false
		}
	}
	return true
}

// stripFormatting removes mIRC formatting codes (bold, colors ...) so a
// command in color still parses.
func stripFormatting(s string) string {
	if !strings.ContainsAny(s, "\x02\x03\x0f\x11\x16\x1d\x1e\x1f") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0x02, 0x0f, 0x11, 0x16, 0x1d, 0x1e, 0x1f:
		case 0x03: // color: \x03[fg[,bg]]
			for j := 0; j < 2 && i+1 < len(s) && isDigit(s[i+1]); j++ {
				i++
			}
			if i+2 < len(s) && s[i+1] == ',' && isDigit(s[i+2]) {
				i += 2
				if i+1 < len(s) && isDigit(s[i+1]) {
					i++
				}
			}
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// bucket is the flood control: burst lines at once, then one every every.
type bucket struct {
	burst  int
	every  time.Duration
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func (b *bucket) wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		now := time.Now()
		if !b.last.IsZero() {
			b.tokens = min(float64(b.burst), b.tokens+float64(now.Sub(b.last))/float64(b.every))
		}
		b.last = now
		if b.tokens >= 1 {
			b.tokens--
			b.mu.Unlock()
			return nil
		}
		wait := time.Duration((1 - b.tokens) * float64(b.every))
		b.mu.Unlock()
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

package workload

import "strconv"

// nginxRest completes a combined-format line:
// ADDR - USER [TIME] "REQUEST" STATUS BYTES "REFERER" "UA"
// The address must already be in b.
func (g *gen) nginxRest(b []byte, user, request string, status, size int, referer, ua string) []byte {
	b = append(b, " - "...)
	b = append(b, user...)
	b = append(b, " ["...)
	b = append(b, g.clk.nginxTS...)
	b = append(b, "] \""...)
	b = append(b, request...)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(size), 10)
	b = append(b, " \""...)
	b = append(b, referer...)
	b = append(b, "\" \""...)
	b = append(b, ua...)
	return append(b, '"')
}

type webReq struct {
	request string
	status  int
}

// Requests matched by NginxRegexes, per attacker behavior.
var nginxAttackMix = [nBehaviors][]webReq{
	bruteRoot: {
		{"POST /wp-login.php HTTP/1.1", 200},
		{"POST /wp-login.php HTTP/1.1", 200},
		{"GET /wp-login.php HTTP/1.1", 200},
		{"POST /xmlrpc.php HTTP/1.1", 200},
		{"GET /admin/ HTTP/1.1", 401},
		{"GET /server-status HTTP/1.1", 401},
	},
	dictionary: {
		{"GET /.env HTTP/1.1", 404},
		{"GET /api/.env HTTP/1.1", 404},
		{"GET /backend/.env HTTP/1.1", 404},
		{"GET /.git/config HTTP/1.1", 404},
		{"GET /.git/HEAD HTTP/1.1", 404},
		{"GET /phpmyadmin/index.php HTTP/1.1", 404},
		{"GET /pma/ HTTP/1.1", 404},
		{"GET /myadmin/scripts/setup.php HTTP/1.1", 404},
	},
	scanner: {
		{"GET /cgi-bin/luci/;stok=/locale?form=country HTTP/1.1", 404},
		{"POST /cgi-bin/.%2e/.%2e/.%2e/bin/sh HTTP/1.1", 400},
		{"GET /wp-login.php HTTP/1.1", 404},
		{"GET /.env HTTP/1.1", 404},
		{"GET /phpmyadmin/ HTTP/1.1", 404},
		{"HEAD /xmlrpc.php HTTP/1.0", 405},
		{"GET /manager/html HTTP/1.1", 401},
	},
}

var scannerUAs = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"python-requests/2.31.0",
	"Go-http-client/1.1",
	"Mozilla/5.0 zgrab/0.x",
	"curl/8.5.0",
	"-",
}

var browserUAs = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 (status 401 reporter)",
}

// Benign requests, a few of them decoys: scanner-looking words outside the
// request path's start, or a body size of 401.
var nginxBenign = []webReq{
	{"GET / HTTP/1.1", 200},
	{"GET / HTTP/2.0", 200},
	{"GET /index.html HTTP/1.1", 200},
	{"GET /about/ HTTP/1.1", 200},
	{"GET /blog/2026/11/hardening-sshd/ HTTP/2.0", 200},
	{"GET /blog/why-you-should-hide-your-.env-file/ HTTP/2.0", 200},
	{"GET /docs/wp-login.php-hardening.html HTTP/1.1", 200},
	{"GET /static/css/main.css HTTP/2.0", 200},
	{"GET /static/js/app.js HTTP/2.0", 200},
	{"GET /static/js/app.js HTTP/2.0", 304},
	{"GET /images/logo.png HTTP/2.0", 200},
	{"GET /favicon.ico HTTP/1.1", 200},
	{"GET /robots.txt HTTP/1.1", 200},
	{"GET /feed.xml HTTP/1.1", 200},
	{"GET /api/v1/items?page=2&sort=date HTTP/1.1", 200},
	{"POST /contact HTTP/1.1", 302},
	{"GET /old-page HTTP/1.1", 301},
	{"GET /missing.png HTTP/1.1", 404},
	{"HEAD / HTTP/1.1", 200},
}

var referers = []string{
	"-", "-", "-", "https://example.org/", "https://www.google.com/search?q=wp-login.php+hardening",
	"https://example.org/blog/2026/11/hardening-sshd/",
}

// Non-matching requests from attacker addresses.
var nginxProbes = []webReq{
	{"GET / HTTP/1.1", 200},
	{"GET /robots.txt HTTP/1.1", 200},
	{"GET /wp-admin/setup-config.php HTTP/1.1", 404},
	{"GET /.well-known/security.txt HTTP/1.1", 404},
	{"\\x16\\x03\\x01\\x00\\xF1\\x01\\x00\\x00\\xED\\x03\\x03", 400},
	{"GET /favicon.ico HTTP/1.1", 200},
}

func (g *gen) nginxAttack(b []byte, idx int) []byte {
	req := pick(g, nginxAttackMix[g.pool.behavior[idx]][:])
	b = g.appendAttacker(b, idx)
	user := "-"
	if req.status == 401 && g.r.IntN(2) == 0 {
		user = pick(g, attackUsers[:10])
	}
	return g.nginxRest(b, user, req.request, req.status, 150+g.r.IntN(400), "-", pick(g, scannerUAs))
}

func (g *gen) nginxBenign(b []byte) []byte {
	if g.r.IntN(5) == 0 { // an attacker's address, non-matching request
		req := pick(g, nginxProbes)
		b = g.appendAttacker(b, g.anyAttacker())
		return g.nginxRest(b, "-", req.request, req.status, 150+g.r.IntN(5000), "-", pick(g, scannerUAs))
	}
	req := pick(g, nginxBenign)
	b = appendBenignWeb(b, uint32(g.r.IntN(4096)))
	size := 0
	switch req.status {
	case 200:
		size = 200 + g.r.IntN(60000)
		if g.r.IntN(50) == 0 {
			size = 401 // decoy: " 200 401 " is no 401 response
		}
	case 404:
		size = 153
	case 301, 302:
		size = 162
	}
	return g.nginxRest(b, "-", req.request, req.status, size, pick(g, referers), pick(g, browserUAs))
}

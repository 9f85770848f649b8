vcl 4.1;

# Varnish in front of a groupcache app (README "Behind a CDN").
# Needs vmod xkey (Debian: varnish-modules). Responses are indexed by the keys
# in their `xkey` header, or, failing that, by their RFC 9875 `Cache-Groups`
# (groupcache writes both in one encoding: no spaces, commas, quotes or
# backslashes inside a key). Two ways to invalidate:
#  - a PURGE request from groupcache's varnishPurger, keys in `xkey-purge`
#    (or `xkey-softpurge`), space-separated;
#  - RFC 9875: the response to a mutation (POST, PUT, PATCH, DELETE) passing
#    through carries `Cache-Group-Invalidation`; its groups are purged before
#    the response reaches the client.

import std;
import xkey;

# The test helper (test/helpers/varnish.ts) rewrites this block's port.
backend default {
    .host = "127.0.0.1";
    .port = "3000";
}

# Who may send PURGE: only the origin's hosts.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey-softpurge) {
            set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
        } elsif (req.http.xkey-purge) {
            set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        } else {
            return (synth(400, "PURGE needs an xkey-purge or xkey-softpurge header"));
        }
        return (synth(200, "Invalidated " + req.http.n-gone + " objects"));
    }
}

sub vcl_backend_response {
    # RFC 9213 CDN-Cache-Control, which Varnish does not read by itself.
    if (beresp.http.CDN-Cache-Control ~ "(^|,)\s*(no-store|private)") {
        set beresp.ttl = 120s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    if (beresp.http.CDN-Cache-Control ~ "max-age=[0-9]+") {
        set beresp.ttl = std.duration(regsub(beresp.http.CDN-Cache-Control, "^.*max-age=([0-9]+).*$", "\1") + "s", 0s);
    }
    if (!beresp.http.xkey && beresp.http.Cache-Groups) {
        set beresp.http.xkey = regsuball(beresp.http.Cache-Groups, {"[",]"}, " ");
    }
}

sub vcl_deliver {
    # RFC 9875: a response to an unsafe method invalidates the groups it names,
    # here, before the client gets it (xkey purges from the client side only).
    if (req.method != "GET" && req.method != "HEAD" && resp.http.Cache-Group-Invalidation) {
        set resp.http.x-invalidated = xkey.purge(regsuball(resp.http.Cache-Group-Invalidation, {"[",]"}, " "));
    }
    if (obj.hits > 0) {
        set resp.http.x-varnish-cache = "HIT";
    } else {
        set resp.http.x-varnish-cache = "MISS";
    }
    # The keys are for this proxy; Cache-Groups stays for caches further down.
    unset resp.http.xkey;
}

"""Config for kamailio in front of bot instances, and the sipp caller that goes through it.

The shape a call center would run to scale out: kamailio (stateful proxy) picks a bot
with its `dispatcher` module, round robin, probing every bot with OPTIONS once a second
so a dead one is taken out of rotation (`dispatcher:dst-down` is logged, which the test
waits for); a call that still reaches a dead or draining bot (503, or no answer before
`fr_timer`) fails over to the next one in `failure_route`. It record-routes, so in-dialog
requests (ACK, BYE) come back through it, and `rtpengine` anchors the media: every SDP
is rewritten to rtpengine's address, so the bot only ever sees the proxy's RTP ports.
"""

from __future__ import annotations

from pathlib import Path

MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")

TEMPLATE = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:@SIP_PORT@
mpath="@MODULES@/"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "dispatcher.so"
loadmodule "rtpengine.so"

# A bot that does not answer an INVITE within 1.5 s is treated as gone.
modparam("tm", "fr_timer", 1500)
modparam("tm", "fr_inv_timer", 30000)
modparam("rr", "append_fromtag", 1)
modparam("dispatcher", "list_file", "@LIST_FILE@")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_ping_interval", 1)
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_from", "sip:proxy@127.0.0.1")
modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:@NG_PORT@")

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (has_totag()) {
        # In-dialog: follow the Route set we put there with Record-Route.
        if (loose_route()) {
            if (is_method("BYE")) {
                rtpengine_delete();
            } else if (is_method("INVITE") && has_body("application/sdp")) {
                rtpengine_offer("replace-origin replace-session-connection");
            }
            t_on_reply("MEDIA");
            route(RELAY);
        }
        if (is_method("ACK") && t_check_trans()) {
            route(RELAY);
        }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            rtpengine_delete();
            route(RELAY);
        }
        exit;
    }
    t_check_trans();
    if (!is_method("INVITE")) {
        sl_send_reply("405", "Only calls here");
        exit;
    }
    record_route();
    # Set 1, algorithm 4: round robin over the bots that are up.
    if (!ds_select_dst("1", "4")) {
        sl_send_reply("503", "No bot available");
        exit;
    }
    xlog("L_NOTICE", "dispatch $ci to $du\\n");
    # "asymmetric": the bot's audio goes where the caller's SDP says (the test's recorder),
    # not where the caller's RTP comes from (sipp streams from another port).
    if (!rtpengine_offer("replace-origin replace-session-connection asymmetric")) {
        sl_send_reply("503", "No media relay");
        exit;
    }
    t_on_failure("NEXT_BOT");
    t_on_reply("MEDIA");
    route(RELAY);
}

route[RELAY] {
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}

onreply_route[MEDIA] {
    if (has_body("application/sdp")) {
        rtpengine_answer("replace-origin replace-session-connection");
    }
}

failure_route[NEXT_BOT] {
    if (t_is_canceled()) {
        exit;
    }
    if (t_check_status("503") || (t_branch_timeout() && !t_branch_replied())) {
        ds_mark_dst("ip");
        if (ds_next_dst()) {
            xlog("L_NOTICE", "failover $ci to $du\\n");
            t_on_failure("NEXT_BOT");
            t_on_reply("MEDIA");
            t_relay();
            exit;
        }
    }
    rtpengine_delete();
}

event_route[dispatcher:dst-down] {
    xlog("L_NOTICE", "bot down: $ru\\n");
}

event_route[dispatcher:dst-up] {
    xlog("L_NOTICE", "bot up: $ru\\n");
}
"""


def write_kamailio_cfg(directory: Path, *, sip_port: int, ng_port: int, bots: list[int]) -> Path:
    """kamailio.cfg and its dispatcher list (one destination per bot SIP port)."""
    listing = directory / "dispatcher.list"
    listing.write_text("".join(f"1 sip:127.0.0.1:{port} 0 0\n" for port in bots))
    text = TEMPLATE
    for key, value in {
        "SIP_PORT": sip_port,
        "NG_PORT": ng_port,
        "LIST_FILE": listing,
        "MODULES": MODULES,
    }.items():
        text = text.replace(f"@{key}@", str(value))
    path = directory / "kamailio.cfg"
    path.write_text(text)
    return path


#: A caller through the proxy: INVITE, ACK and BYE follow the Record-Route set (sipp's
#: `rrs` + `[routes]`) to the bot's Contact (`[next_url]`), and RTP from a WAV is sent
#: while the call lasts. The SDP names @LISTEN_PORT@, a socket in the test that records
#: the bot's audio as rtpengine relays it.
SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="voicebot: a call through kamailio">
  <send retrans="500">
    <![CDATA[

      INVITE sip:bot@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:+15550002222@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bot@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio @LISTEN_PORT@ RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=ptime:20

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:+15550002222@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <nop><action><exec rtp_stream="@WAV@,1,0"/></action></nop>
  <pause milliseconds="@PAUSE_MS@"/>

  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "sipp" <sip:+15550002222@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:bot@[remote_ip]:[remote_port]>[peer_tag_param]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <recv response="200" crlf="true"/>
</scenario>
"""


def write_scenario(path: Path, *, wav: Path, listen_port: int, pause_ms: int) -> Path:
    """The caller scenario with its WAV, RTP listening port and call length filled in."""
    text = SCENARIO.replace("@WAV@", str(wav)).replace("@LISTEN_PORT@", str(listen_port))
    path.write_text(text.replace("@PAUSE_MS@", str(pause_ms)))
    return path

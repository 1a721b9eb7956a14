//! Device type, browser and OS from a user agent (woothee), with link-preview fetchers and
//! crawlers flagged as bots.

use std::sync::OnceLock;

use woothee::parser::Parser;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// `desktop`, `mobile`, `tablet` or `bot`.
    pub device: &'static str,
    pub browser: String,
    pub os: String,
    pub is_bot: bool,
}

fn parser() -> &'static Parser {
    static P: OnceLock<Parser> = OnceLock::new();
    P.get_or_init(Parser::new)
}

fn known(s: &str) -> String {
    if s.is_empty() || s == "UNKNOWN" { "unknown".to_string() } else { s.to_string() }
}

pub fn parse(user_agent: &str) -> Agent {
    let bot_by_list = crate::domain::visitors::is_bot(user_agent);
    let Some(r) = parser().parse(user_agent) else {
        return Agent {
            device: if bot_by_list { "bot" } else { "desktop" },
            browser: "unknown".into(),
            os: "unknown".into(),
            is_bot: bot_by_list,
        };
    };
    let is_bot = bot_by_list || r.category == "crawler";
    let ua = user_agent.to_ascii_lowercase();
    let tablet = ua.contains("ipad") || ua.contains("tablet") || (ua.contains("android") && !ua.contains("mobile"));
    let device = if is_bot {
        "bot"
    } else if tablet {
        "tablet"
    } else {
        match r.category {
            "smartphone" | "mobilephone" => "mobile",
            _ => "desktop",
        }
    };
    Agent { device, browser: known(r.name), os: known(r.os), is_bot }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corpus_of_real_user_agents() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "desktop",
                "Chrome",
                "Windows 10",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
                "desktop",
                "Safari",
                "Mac OSX",
            ),
            (
                "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                "desktop",
                "Firefox",
                "Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
                "mobile",
                "Safari",
                "iPhone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
                "mobile",
                "Chrome",
                "Android",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
                "tablet",
                "Safari",
                "iPad",
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "tablet",
                "Chrome",
                "Android",
            ),
        ];
        for (ua, device, browser, os) in cases {
            let a = parse(ua);
            assert_eq!((a.device, a.browser.as_str(), a.os.as_str(), a.is_bot), (device, browser, os, false), "{ua}");
        }
    }

    #[test]
    fn crawlers_and_link_previews_are_bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Twitterbot/1.0",
            "WhatsApp/2.23.20.0",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        ] {
            let a = parse(ua);
            assert!(a.is_bot && a.device == "bot", "{ua}");
        }
    }
}

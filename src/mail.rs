//! Outgoing e-mail (lettre over SMTP, TLS by URL: `smtps://` or `smtp://…?tls=required`), sent
//! in the background: a request never waits for a mail server.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl Mailer {
    /// No `smtp_url`: mail is off (and `send` does nothing).
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Mailer> {
        let from: Mailbox =
            from.parse().map_err(|e| anyhow::anyhow!("`smtp_from` = {from:?} is not an address: {e}"))?;
        let transport = match smtp_url {
            Some(u) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(u)
                    .map_err(|e| anyhow::anyhow!("`smtp_url` is not usable ({e}); use smtp://host:25, smtp://host:587?tls=required or smtps://user:pass@host:465"))?
                    .build(),
            ),
            None => None,
        };
        Ok(Mailer { transport, from })
    }

    pub fn enabled(&self) -> bool {
        self.transport.is_some()
    }

    /// Queues a plain-text mail; failures are logged and counted, never returned to a request.
    pub fn send(&self, to: &str, subject: &str, body: String) {
        let Some(transport) = self.transport.clone() else { return };
        let message = to.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("{e}")).and_then(|to| {
            Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(subject)
                .body(body)
                .map_err(|e| anyhow::anyhow!("{e}"))
        });
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "could not build an e-mail");
                return;
            }
        };
        tokio::spawn(async move {
            match transport.send(message).await {
                Ok(_) => metrics::counter!("vitrine_mail_sent_total").increment(1),
                Err(e) => {
                    metrics::counter!("vitrine_mail_failed_total").increment(1);
                    tracing::warn!(error = %e, "could not send an e-mail");
                }
            }
        });
    }
}

//! How a sign-in looks on the terminal: which way to sign in from where the user is, the
//! code and address of a sign-in with a code, the address to open for one without a
//! browser here.

use mcp_broker::service::api::{CodePrompt, LoginEvent, Method};
use mcp_broker::service::client::Control;
use url::Url;
use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

use super::args::LoginArgs;

/// The way the options ask for, if they name one.
pub fn method(args: &LoginArgs) -> Option<Method> {
    match (args.device, args.no_browser, args.browser) {
        (true, _, _) => Some(Method::Device),
        (_, true, _) => Some(Method::Paste),
        (_, _, true) => Some(Method::Browser),
        _ => None,
    }
}

/// Show a progress event of the sign-in on stderr (stdout is for the result); for a
/// sign-in without a browser here, start taking pasted addresses to the service.
pub fn show(control: &Control, event: &LoginEvent) {
    match event {
        LoginEvent::OpenUrl { url } => eprintln!("Opening your browser to sign in. If it does not open, visit:\n\n  {url}\n"),
        LoginEvent::PasteUrl { url } => {
            eprintln!("{}", paste_text(url));
            take_pastes(control.clone());
        }
        LoginEvent::BrowserFailed { message } | LoginEvent::Note { message } => eprintln!("{message}"),
        LoginEvent::DeviceCode(prompt) => eprint!("{}", code_text(prompt)),
        _ => {}
    }
}

fn paste_text(url: &Url) -> String {
    format!(
        "Open this address in a browser on any machine and sign in:\n\n  {url}\n\n\
         The browser then ends on an address that does not load (http://127.0.0.1:…/callback?…).\n\
         Copy that address from the browser's address bar and paste it here, then press Enter:"
    )
}

/// Read pasted addresses from stdin (a thread of its own: a blocking read must not keep
/// the runtime from ending) and hand each to the service, for as long as the sign-in runs.
fn take_pastes(control: Control) {
    // Once per run: a sign-in tried again (a new registration) shows its address again.
    static STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if STARTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if !line.trim().is_empty() && tx.send(line).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            // Taken or not, go on reading: a sign-in tried again asks for a new address.
            if let Err(e) = control.paste(line.trim()).await {
                eprintln!("{e}");
            }
        }
    });
}

/// The code, where to enter it, and (when the AS gives the address with the code in it) a
/// QR code of that address for a phone.
fn code_text(p: &CodePrompt) -> String {
    let minutes = p.expires_in_secs.div_ceil(60);
    let mut out = format!(
        "To sign in, open this address on any device:\n\n  {}\n\nand enter the code:\n\n  {}\n\n",
        p.verification_uri, p.user_code
    );
    if let Some(complete) = &p.verification_uri_complete {
        if let Some(qr) = qr(complete) {
            out.push_str(&format!("Or scan this with a phone (it opens {complete}):\n\n{qr}\n"));
        }
    }
    out.push_str(&format!("Waiting for you to finish (the code is valid for {minutes} min)…\n"));
    out
}

/// A QR code drawn with half-block characters, two rows of modules per line.
fn qr(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(code.render::<Dense1x2>().quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_text_shows_code_address_and_a_qr_code() {
        let p = CodePrompt {
            user_code: "WDJB-MJHT".into(),
            verification_uri: "https://as.example/device".parse().unwrap(),
            verification_uri_complete: Some("https://as.example/device?user_code=WDJB-MJHT".into()),
            expires_in_secs: 600,
        };
        let text = code_text(&p);
        assert!(text.contains("https://as.example/device\n"));
        assert!(text.contains("  WDJB-MJHT\n"));
        assert!(text.contains('▀') || text.contains('▄') || text.contains('█'), "a QR code is drawn");
        assert!(text.contains("valid for 10 min"));
        let plain = code_text(&CodePrompt { verification_uri_complete: None, ..p });
        assert!(!plain.contains("scan"));
    }
}

//! The CLI's progress display: a live panel on a terminal (indicatif), plain
//! periodic lines on stderr otherwise, nothing with `--json`.
//!
//! Owns formatting [`Progress`] for people. It does not compute anything: the
//! write loop's snapshots carry every figure.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use airlock::write::Progress;

/// How often the write loop reports: often on a terminal, every 5 s in logs.
pub fn interval(json: bool) -> Duration {
    if !json && std::io::stderr().is_terminal() {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(5)
    }
}

/// One command's progress display.
pub struct Display {
    bar: Option<ProgressBar>,
    plain: bool,
}

impl Display {
    /// A live panel when stderr is a terminal, plain lines when not, nothing when
    /// the output is JSON.
    pub fn new(json: bool) -> Self {
        if json {
            return Self {
                bar: None,
                plain: false,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar.set_message("starting…");
            Self {
                bar: Some(bar),
                plain: false,
            }
        } else {
            Self {
                bar: None,
                plain: true,
            }
        }
    }

    /// The callback to hand the write, if anything is displayed.
    pub fn callback(&self) -> Option<impl FnMut(&Progress) + Send + 'static> {
        let bar = self.bar.clone();
        let plain = self.plain;
        (bar.is_some() || plain).then_some({
            move |p: &Progress| match &bar {
                Some(bar) => bar.set_message(panel(p)),
                None => eprintln!("airlock: {}", summary_line(p)),
            }
        })
    }

    /// Clears the panel.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `N records sent (R/s, M MB/s), C confirmed`, with `; R read into the cache`
/// while the read it follows goes on; before anything is sent, `reading into the
/// cache: N records (R/s)`; before the source's first message, `waiting for SOURCE
/// to start (12 s)`.
pub fn summary_line(p: &Progress) -> String {
    let secs = p.elapsed.as_secs_f64().max(1e-9);
    if let Some(source) = &p.waiting_for {
        return format!("waiting for {source} to start ({} s)", p.elapsed.as_secs());
    }
    if let Some(read) = p.reading
        && p.records_sent == 0
    {
        return format!(
            "reading into the cache: {read} records ({:.0}/s)",
            read as f64 / secs
        );
    }
    let mut line = format!(
        "{} records sent ({:.0}/s, {:.1} MB/s), {} confirmed, {} states confirmed",
        p.records_sent,
        p.records_sent as f64 / secs,
        p.bytes_sent as f64 / 1e6 / secs,
        p.records_confirmed,
        p.states_confirmed,
    );
    if let Some(read) = p.reading {
        line.push_str(&format!("; {read} read into the cache"));
    }
    line
}

/// The summary line, then one line per stream with its sent and confirmed counts.
fn panel(p: &Progress) -> String {
    let mut text = summary_line(p);
    let names: Vec<String> = p.streams.iter().map(|(d, ..)| d.to_string()).collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    for (name, (_, sent, confirmed)) in names.iter().zip(&p.streams) {
        text.push_str(&format!(
            "\n    {name:<width$}  {sent:>12} sent  {confirmed:>12} confirmed"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock::protocol::StreamDescriptor;

    #[test]
    fn the_panel_has_rates_and_a_line_per_stream() {
        let p = Progress {
            records_sent: 2000,
            bytes_sent: 4_000_000,
            records_confirmed: 1500,
            states_confirmed: 3,
            elapsed: Duration::from_secs(2),
            streams: vec![
                (StreamDescriptor::new("users"), 1500, 1000),
                (
                    StreamDescriptor::with_namespace("purchases", Some("ns".into())),
                    500,
                    500,
                ),
            ],
            reading: None,
            waiting_for: None,
        };
        let text = panel(&p);
        assert!(
            text.starts_with("2000 records sent (1000/s, 2.0 MB/s), 1500 confirmed"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.contains("users") && text.contains("1000 confirmed"),
            "{text}"
        );
        let waiting = Progress {
            reading: Some(0),
            waiting_for: Some("source-faker".into()),
            elapsed: Duration::from_secs(12),
            ..Progress::default()
        };
        assert_eq!(
            summary_line(&waiting),
            "waiting for source-faker to start (12 s)"
        );
        let reading = Progress {
            reading: Some(3000),
            elapsed: Duration::from_secs(2),
            ..Progress::default()
        };
        assert_eq!(
            panel(&reading),
            "reading into the cache: 3000 records (1500/s)"
        );
        let following = Progress {
            records_sent: 1000,
            reading: Some(3000),
            elapsed: Duration::from_secs(2),
            ..Progress::default()
        };
        assert!(
            summary_line(&following).starts_with("1000 records sent (500/s")
                && summary_line(&following).ends_with("; 3000 read into the cache"),
            "{}",
            summary_line(&following)
        );
    }
}

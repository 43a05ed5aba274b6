//! `client`: one blocking connection to a PostgreSQL server over the standard
//! library's TCP. The wire format — message encoding and parsing, SCRAM-SHA-256
//! and MD5 — is `postgres-protocol`'s; this module only sequences it: connect,
//! authenticate, run simple queries, and stream `COPY … FROM STDIN`.
//!
//! It knows nothing of Airbyte, catalogs or records, and it runs unchanged as
//! a native binary and inside a WASI component (blocking `std::net` works on
//! `wasm32-wasip2`; the host decides which addresses it may reach).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::{backend, frontend};

/// How long a connection attempt to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The size at which buffered outgoing messages are written to the socket.
const WRITE_CHUNK: usize = 256 * 1024;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct ConnectParams {
    /// A host name or IP address.
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The database to connect to.
    pub database: String,
    /// The role to log in as.
    pub user: String,
    /// The password, if the server asks for one.
    pub password: Option<String>,
    /// Shown in `pg_stat_activity`.
    pub application_name: String,
}

impl fmt::Debug for ConnectParams {
    /// Everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

/// An error the server reported (an `ErrorResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// `ERROR`, `FATAL` or `PANIC`.
    pub severity: String,
    /// The SQLSTATE code, e.g. `28P01` for a wrong password.
    pub code: String,
    /// The primary message.
    pub message: String,
    /// The optional detail.
    pub detail: Option<String>,
    /// The optional hint.
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, "; {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// What can go wrong talking to the server.
#[derive(Debug)]
pub enum PgError {
    /// No address of the host accepted a connection.
    Connect {
        /// `host:port` as configured.
        target: String,
        /// Why the last attempt failed.
        source: io::Error,
    },
    /// The connection broke after it was made.
    Io(io::Error),
    /// The server refused a statement or the login.
    Server(ServerError),
    /// The server said something this client cannot handle.
    Protocol(String),
}

impl PgError {
    /// The server's SQLSTATE, for a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server(e) => Some(&e.code),
            _ => None,
        }
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect { target, source } => write!(
                f,
                "could not connect to PostgreSQL at {target}: {source} \
                 (is the server running there, and are host and port right?)"
            ),
            Self::Io(e) => write!(f, "the connection to PostgreSQL broke: {e}"),
            Self::Server(e) => write!(f, "PostgreSQL: {e}"),
            Self::Protocol(what) => write!(f, "PostgreSQL protocol: {what}"),
        }
    }
}

impl std::error::Error for PgError {}

impl From<io::Error> for PgError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// One row of a simple query's result: each column as text, or NULL.
pub type TextRow = Vec<Option<String>>;

/// A logged-in connection.
pub struct Connection {
    stream: TcpStream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// True between a COPY's start and its end.
    in_copy: bool,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("in_copy", &self.in_copy)
            .finish()
    }
}

impl Connection {
    /// Connects to the first address of `params.host` that answers, logs in,
    /// and waits for the server to be ready.
    ///
    /// # Errors
    ///
    /// [`PgError::Connect`] when no address answers; [`PgError::Server`] when
    /// the server refuses the login (wrong password: `28P01`; unknown
    /// database: `3D000`).
    pub fn connect(params: &ConnectParams) -> Result<Self, PgError> {
        let target = format!("{}:{}", params.host, params.port);
        let stream = open_socket(&params.host, params.port).map_err(|source| PgError::Connect {
            target: target.clone(),
            source,
        })?;
        let mut connection = Self {
            stream,
            read_buf: BytesMut::with_capacity(64 * 1024),
            write_buf: BytesMut::with_capacity(WRITE_CHUNK + 1024),
            in_copy: false,
        };
        // Until the login completes, a broken socket means the server was
        // never reached (WASI reports a refused connect at the first write).
        connection.startup(params).map_err(|e| match e {
            PgError::Io(source) => PgError::Connect { target, source },
            other => other,
        })?;
        Ok(connection)
    }

    fn startup(&mut self, params: &ConnectParams) -> Result<(), PgError> {
        let options = [
            ("user", params.user.as_str()),
            ("database", params.database.as_str()),
            ("application_name", params.application_name.as_str()),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO"),
            ("TimeZone", "UTC"),
        ];
        frontend::startup_message(options, &mut self.write_buf)?;
        self.send()?;
        let mut scram: Option<sasl::ScramSha256> = None;
        loop {
            match self.read_message()? {
                backend::Message::AuthenticationOk => {}
                backend::Message::AuthenticationCleartextPassword => {
                    let password = password_of(params)?;
                    frontend::password_message(password.as_bytes(), &mut self.write_buf)?;
                    self.send()?;
                }
                backend::Message::AuthenticationMd5Password(body) => {
                    let password = password_of(params)?;
                    let hash = md5_hash(params.user.as_bytes(), password.as_bytes(), body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write_buf)?;
                    self.send()?;
                }
                backend::Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut offered = Vec::new();
                    while let Some(mechanism) = mechanisms.next()? {
                        offered.push(mechanism.to_owned());
                    }
                    if !offered.iter().any(|m| m == sasl::SCRAM_SHA_256) {
                        return Err(PgError::Protocol(format!(
                            "the server offers SASL mechanisms {offered:?}; this client speaks {}",
                            sasl::SCRAM_SHA_256
                        )));
                    }
                    let password = password_of(params)?;
                    let exchange = sasl::ScramSha256::new(
                        password.as_bytes(),
                        sasl::ChannelBinding::unsupported(),
                    );
                    frontend::sasl_initial_response(
                        sasl::SCRAM_SHA_256,
                        exchange.message(),
                        &mut self.write_buf,
                    )?;
                    self.send()?;
                    scram = Some(exchange);
                }
                backend::Message::AuthenticationSaslContinue(body) => {
                    let exchange = scram.as_mut().ok_or_else(|| {
                        PgError::Protocol("a SASL continuation before SASL began".into())
                    })?;
                    exchange.update(body.data())?;
                    frontend::sasl_response(exchange.message(), &mut self.write_buf)?;
                    self.send()?;
                }
                backend::Message::AuthenticationSaslFinal(body) => {
                    let mut exchange = scram.take().ok_or_else(|| {
                        PgError::Protocol("a SASL final message before SASL began".into())
                    })?;
                    exchange.finish(body.data())?;
                }
                backend::Message::ReadyForQuery(_) => return Ok(()),
                backend::Message::ErrorResponse(body) => {
                    return Err(PgError::Server(server_error(&body)?));
                }
                // BackendKeyData, ParameterStatus, NoticeResponse.
                _ => {}
            }
        }
    }

    /// Runs `sql` (one or more statements) and returns the rows of every
    /// statement that returned any, as text.
    ///
    /// # Errors
    ///
    /// The server's error; the connection stays usable (outside a
    /// transaction, or in a failed one that must be rolled back).
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>, PgError> {
        self.expect_idle()?;
        frontend::query(sql, &mut self.write_buf)?;
        self.send()?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            match self.read_message()? {
                backend::Message::DataRow(body) => {
                    let buffer = body.buffer();
                    let mut ranges = body.ranges();
                    let mut row = Vec::new();
                    while let Some(range) = ranges.next()? {
                        row.push(range.map(|range| {
                            String::from_utf8_lossy(buffer.get(range).unwrap_or_default())
                                .into_owned()
                        }));
                    }
                    rows.push(row);
                }
                backend::Message::ErrorResponse(body) => {
                    error.get_or_insert(server_error(&body)?);
                }
                backend::Message::CopyInResponse(_) => {
                    // Not expected from a simple query; end it so the
                    // connection stays in step.
                    frontend::copy_fail(
                        "COPY is not run through simple_query",
                        &mut self.write_buf,
                    )?;
                    self.send()?;
                }
                backend::Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(PgError::Server(e)),
            None => Ok(rows),
        }
    }

    /// Runs `sql`, ignoring any rows.
    ///
    /// # Errors
    ///
    /// As [`simple_query`](Self::simple_query).
    pub fn execute(&mut self, sql: &str) -> Result<(), PgError> {
        self.simple_query(sql).map(drop)
    }

    /// Starts `sql`, a `COPY … FROM STDIN`, and waits until the server takes data.
    ///
    /// # Errors
    ///
    /// The server's error (an unknown table, say); no COPY is then open.
    pub fn copy_in(&mut self, sql: &str) -> Result<(), PgError> {
        self.expect_idle()?;
        frontend::query(sql, &mut self.write_buf)?;
        self.send()?;
        loop {
            match self.read_message()? {
                backend::Message::CopyInResponse(_) => {
                    self.in_copy = true;
                    return Ok(());
                }
                backend::Message::ErrorResponse(body) => {
                    let error = server_error(&body)?;
                    self.wait_ready()?;
                    return Err(PgError::Server(error));
                }
                backend::Message::ReadyForQuery(_) => {
                    return Err(PgError::Protocol(format!(
                        "the statement did not start a COPY: {sql}"
                    )));
                }
                _ => {}
            }
        }
    }

    /// Sends `data` (whole rows in the COPY's format) to the open COPY.
    /// Small pieces are gathered and written in chunks.
    ///
    /// # Errors
    ///
    /// The connection broke; a row the server rejects is reported by
    /// [`copy_done`](Self::copy_done).
    pub fn copy_data(&mut self, data: &[u8]) -> Result<(), PgError> {
        if !self.in_copy {
            return Err(PgError::Protocol("COPY data sent with no COPY open".into()));
        }
        if data.is_empty() {
            return Ok(());
        }
        frontend::CopyData::new(data)?.write(&mut self.write_buf);
        if self.write_buf.len() >= WRITE_CHUNK {
            self.send()?;
        }
        Ok(())
    }

    /// Ends the open COPY and returns the number of rows the server took.
    ///
    /// # Errors
    ///
    /// The server's error for the whole COPY (nothing of it is loaded).
    pub fn copy_done(&mut self) -> Result<u64, PgError> {
        if !self.in_copy {
            return Err(PgError::Protocol("COPY ended with no COPY open".into()));
        }
        frontend::copy_done(&mut self.write_buf);
        self.send()?;
        self.in_copy = false;
        let mut rows = 0;
        let mut error = None;
        loop {
            match self.read_message()? {
                backend::Message::CommandComplete(body) => {
                    let tag = body.tag()?;
                    rows = tag
                        .rsplit(' ')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                }
                backend::Message::ErrorResponse(body) => {
                    error.get_or_insert(server_error(&body)?);
                }
                backend::Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(PgError::Server(e)),
            None => Ok(rows),
        }
    }

    /// Abandons the open COPY: the server loads none of it.
    ///
    /// # Errors
    ///
    /// The connection broke.
    pub fn copy_fail(&mut self, why: &str) -> Result<(), PgError> {
        if !self.in_copy {
            return Ok(());
        }
        frontend::copy_fail(why, &mut self.write_buf)?;
        self.send()?;
        self.in_copy = false;
        self.wait_ready()
    }

    /// Says goodbye (best effort) and closes the socket.
    pub fn close(mut self) {
        frontend::terminate(&mut self.write_buf);
        let _ = self.send();
    }

    fn expect_idle(&self) -> Result<(), PgError> {
        if self.in_copy {
            return Err(PgError::Protocol(
                "a statement was sent while a COPY is open".into(),
            ));
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), PgError> {
        loop {
            if let backend::Message::ReadyForQuery(_) = self.read_message()? {
                return Ok(());
            }
        }
    }

    /// Writes every buffered message to the socket.
    fn send(&mut self) -> Result<(), PgError> {
        self.stream.write_all(&self.write_buf)?;
        self.write_buf.clear();
        Ok(())
    }

    fn read_message(&mut self) -> Result<backend::Message, PgError> {
        loop {
            if let Some(message) = backend::Message::parse(&mut self.read_buf)? {
                return Ok(message);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(PgError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.read_buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn password_of(params: &ConnectParams) -> Result<&str, PgError> {
    params.password.as_deref().ok_or_else(|| {
        PgError::Server(ServerError {
            severity: "FATAL".into(),
            code: "28P01".into(),
            message: format!(
                "the server asks for a password for user {:?} and none is configured",
                params.user
            ),
            detail: None,
            hint: Some("set password in the destination's config".into()),
        })
    })
}

fn server_error(body: &backend::ErrorResponseBody) -> Result<ServerError, PgError> {
    let mut error = ServerError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
        detail: None,
        hint: None,
    };
    let mut fields = body.fields();
    while let Some(field) = fields.next()? {
        let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
        match field.type_() {
            b'V' => error.severity = value,
            b'S' if error.severity.is_empty() => error.severity = value,
            b'C' => error.code = value,
            b'M' => error.message = value,
            b'D' => error.detail = Some(value),
            b'H' => error.hint = Some(value),
            _ => {}
        }
    }
    Ok(error)
}

/// Connects to the first of `host`'s addresses that answers.
fn open_socket(host: &str, port: u16) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("the name {host:?} resolves to no address"),
    );
    for addr in addrs {
        let attempt = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => TcpStream::connect(addr),
            other => other,
        };
        match attempt {
            Ok(stream) => {
                // Not every platform has the option (WASI has none); the
                // client writes whole messages, so it only saves latency.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// `text` as a quoted SQL identifier: `"` around it, inner quotes doubled.
pub fn quote_ident(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// `text` as a quoted SQL string literal (standard_conforming_strings on).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

// The jshell driver's launcher (src/kernels/drivers/jshell.ts): compiled once per JDK, it runs
// jshell's engine in-process and speaks the driver's framed protocol on stdio.
import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.File;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.Field;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.stream.Collectors;
import jdk.jshell.Diag;
import jdk.jshell.EvalException;
import jdk.jshell.JShell;
import jdk.jshell.JShellException;
import jdk.jshell.Snippet;
import jdk.jshell.SnippetEvent;
import jdk.jshell.SourceCodeAnalysis;
import jdk.jshell.UnresolvedReferenceException;

/**
 * The sandbox agent's Java driver: one JShell (local execution engine, so user code shares this JVM
 * and sees the environment changes made here) driven over framed messages.
 *
 * Every frame, both ways: one type byte, a 4-byte big-endian length, then the payload. Lists of
 * strings are a 4-byte count followed by (4-byte length, UTF-8 bytes) per string.
 *   agent -> here: 'X' execute [token, code, name1, value1, ...]; 'S' stop the running cell.
 *   here -> agent: 'K' ready; 'O'/'E' raw stdout/stderr bytes of user code; 'R' value of the cell's
 *                  trailing expression; 'F' error [name, value, traceback lines...]; 'D' done [token, status].
 */
public final class SandboxAgentJShell {
    private static final DataOutputStream PROTOCOL =
            new DataOutputStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16));

    private static final String[] DEFAULT_IMPORTS = {
        "import java.io.*;", "import java.math.*;", "import java.net.*;", "import java.nio.file.*;",
        "import java.util.*;", "import java.util.concurrent.*;", "import java.util.function.*;",
        "import java.util.prefs.*;", "import java.util.regex.*;", "import java.util.stream.*;",
    };

    private static final UserStream USER_OUT = new UserStream('O');
    private static final UserStream USER_ERR = new UserStream('E');

    /*
     * Cells are numbered as they arrive. A stop frame is for the last cell that arrived (the agent
     * sends one only while a cell is running), so it can neither be lost when it overtakes the
     * cell's start nor reach the next cell.
     */
    private static volatile long queuedCells;
    private static volatile long runningCell;
    private static volatile long finishedCells;
    private static volatile long stopCell;
    private static volatile boolean starting = true;
    private static int userSnippets;
    private static int tempVariables;
    private static Map<String, String> writableEnvironment;

    private SandboxAgentJShell() {}

    static void frame(int type, byte[] data, int offset, int length) {
        synchronized (PROTOCOL) {
            try {
                PROTOCOL.writeByte(type);
                PROTOCOL.writeInt(length);
                PROTOCOL.write(data, offset, length);
                PROTOCOL.flush();
            } catch (IOException e) {
                // The agent is gone: nobody can see this JVM's output any more.
                Runtime.getRuntime().halt(3);
            }
        }
    }

    static void frame(int type, List<String> strings) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream data = new DataOutputStream(bytes);
        try {
            data.writeInt(strings.size());
            for (String s : strings) {
                byte[] b = s.getBytes(StandardCharsets.UTF_8);
                data.writeInt(b.length);
                data.write(b);
            }
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        byte[] payload = bytes.toByteArray();
        frame(type, payload, 0, payload.length);
    }

    static List<String> strings(byte[] payload) throws IOException {
        DataInputStream data = new DataInputStream(new ByteArrayInputStream(payload));
        int count = data.readInt();
        List<String> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            byte[] b = new byte[data.readInt()];
            data.readFully(b);
            out.add(new String(b, StandardCharsets.UTF_8));
        }
        return out;
    }

    /**
     * User output, batched into frames: a print loop must not cost one frame per character, yet
     * output must reach the agent while the cell still runs (the flusher drains every few ms).
     */
    static final class UserStream extends OutputStream {
        private final int type;
        private final byte[] buffer = new byte[1 << 15];
        private int used;

        UserStream(int type) {
            this.type = type;
        }

        @Override
        public synchronized void write(int b) {
            if (used == buffer.length) drain();
            buffer[used++] = (byte) b;
        }

        @Override
        public synchronized void write(byte[] b, int offset, int length) {
            while (length > 0) {
                if (used == buffer.length) drain();
                int n = Math.min(length, buffer.length - used);
                System.arraycopy(b, offset, buffer, used, n);
                used += n;
                offset += n;
                length -= n;
            }
        }

        /** PrintStream flushes on every println: batching is the flusher's job. */
        @Override
        public void flush() {}

        synchronized void drain() {
            if (used > 0) {
                frame(type, buffer, 0, used);
                used = 0;
            }
        }
    }

    public static void main(String[] args) throws Exception {
        DataInputStream requests = new DataInputStream(new FileInputStream(FileDescriptor.in));
        PrintStream out = new PrintStream(USER_OUT, false, StandardCharsets.UTF_8);
        PrintStream err = new PrintStream(USER_ERR, false, StandardCharsets.UTF_8);
        System.setOut(out);
        System.setErr(err);
        // Cells cannot be answered with input: reading stdin ends at once instead of hanging.
        System.setIn(new ByteArrayInputStream(new byte[0]));

        JShell shell = JShell.builder()
                .executionEngine("local")
                .in(System.in)
                .out(out)
                .err(err)
                .idGenerator((snippet, n) -> starting ? "s" + n : String.valueOf(++userSnippets))
                .tempVariableNameGenerator(() -> starting ? "$s" + tempVariables : "$" + (++tempVariables))
                .build();
        for (String imp : DEFAULT_IMPORTS) shell.eval(imp);
        String classpath = System.getenv("CLASSPATH");
        if (classpath != null) {
            for (String entry : classpath.split(File.pathSeparator)) {
                if (!entry.isEmpty()) shell.addToClasspath(entry);
            }
        }
        // Compiles and runs one expression now so that the first user cell does not pay for it.
        for (SnippetEvent e : shell.eval("String.valueOf(0)")) shell.drop(e.snippet());
        starting = false;

        Thread flusher = new Thread(() -> {
            while (true) {
                try {
                    Thread.sleep(5);
                } catch (InterruptedException e) {
                    return;
                }
                USER_OUT.drain();
                USER_ERR.drain();
            }
        }, "sandbox-agent-flusher");
        flusher.setDaemon(true);
        flusher.start();

        BlockingQueue<List<String>> cells = new LinkedBlockingQueue<>();
        // Only this thread writes queuedCells, and it does so before the cell can be taken.
        Thread reader = new Thread(() -> {
            try {
                while (true) {
                    int type = requests.readUnsignedByte();
                    byte[] payload = new byte[requests.readInt()];
                    requests.readFully(payload);
                    if (type == 'X') {
                        List<String> cell = strings(payload);
                        queuedCells = queuedCells + 1;
                        cells.add(cell);
                    } else if (type == 'S') {
                        requestStop(shell);
                    }
                }
            } catch (EOFException e) {
                // stdin closed: the agent is gone or shut us down.
            } catch (IOException e) {
                // same
            }
            Runtime.getRuntime().halt(0);
        }, "sandbox-agent-requests");
        reader.setDaemon(true);
        reader.start();

        frame('K', List.of());
        SourceCodeAnalysis analysis = shell.sourceCodeAnalysis();
        while (true) {
            List<String> request = cells.take();
            runningCell = finishedCells + 1;
            String token = request.get(0);
            String status;
            Map<String, String> saved = null;
            try {
                saved = applyEnvironment(request);
            } catch (ReflectiveOperationException | RuntimeException e) {
                error("EnvironmentError", "cannot set environment variables for this execution: " + e, List.of());
            }
            if (saved == null) {
                status = "error";
            } else {
                try {
                    status = runCell(shell, analysis, request.get(1));
                } catch (RuntimeException e) {
                    // JShell itself failed (not the user's code): say so rather than leave the cell hanging.
                    error("InternalError", String.valueOf(e), List.of());
                    status = "error";
                } finally {
                    restoreEnvironment(saved);
                }
            }
            finishedCells = runningCell;
            runningCell = 0;
            USER_OUT.drain();
            USER_ERR.drain();
            frame('D', List.of(token, status));
        }
    }

    /**
     * JShell.stop() only acts while user code runs, not while a snippet compiles, and code may
     * catch the ThreadDeath it causes: so it is repeated until the cell ends. Between snippets the
     * flag itself ends the cell.
     */
    private static void requestStop(JShell shell) {
        long cell = queuedCells;
        if (cell == 0 || cell <= finishedCells || stopCell == cell) return;
        stopCell = cell;
        Thread stopper = new Thread(() -> {
            while (finishedCells < cell) {
                try {
                    if (runningCell == cell) shell.stop();
                } catch (Throwable e) {
                    // Nothing to stop at this instant; try again shortly.
                }
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "sandbox-agent-stopper");
        stopper.setDaemon(true);
        stopper.start();
    }

    /**
     * Java cannot change its environment, but System.getenv() is a read-only view over a mutable
     * map (which ProcessBuilder copies for child processes too): writing that map, opened with
     * --add-opens java.base/java.util, makes the variables visible to this cell and its children.
     */
    @SuppressWarnings("unchecked")
    private static Map<String, String> environment() throws ReflectiveOperationException {
        if (writableEnvironment == null) {
            Map<String, String> view = System.getenv();
            Field inner = view.getClass().getDeclaredField("m");
            inner.setAccessible(true);
            writableEnvironment = (Map<String, String>) inner.get(view);
        }
        return writableEnvironment;
    }

    private static Map<String, String> applyEnvironment(List<String> request) throws ReflectiveOperationException {
        Map<String, String> saved = new LinkedHashMap<>();
        if (request.size() <= 2) return saved;
        Map<String, String> env = environment();
        for (int i = 2; i + 1 < request.size(); i += 2) {
            String name = request.get(i);
            if (!saved.containsKey(name)) saved.put(name, env.get(name));
            env.put(name, request.get(i + 1));
        }
        return saved;
    }

    private static void restoreEnvironment(Map<String, String> saved) {
        try {
            Map<String, String> env = environment();
            for (Map.Entry<String, String> entry : saved.entrySet()) {
                if (entry.getValue() == null) env.remove(entry.getKey());
                else env.put(entry.getKey(), entry.getValue());
            }
        } catch (ReflectiveOperationException e) {
            // applyEnvironment succeeded with the same map, so this cannot happen.
        }
    }

    private static void error(String name, String value, List<String> traceback) {
        USER_OUT.drain();
        USER_ERR.drain();
        List<String> fields = new ArrayList<>();
        fields.add(name);
        fields.add(value);
        fields.addAll(traceback);
        frame('F', fields);
    }

    private static String interrupted() {
        error("Interrupted", "the execution was interrupted", List.of());
        return "error";
    }

    /** Runs a cell snippet by snippet, as jshell would; stops at the first error. */
    private static String runCell(JShell shell, SourceCodeAnalysis analysis, String code) {
        String remaining = code;
        String lastValue = null;
        while (true) {
            if (stopCell == runningCell) return interrupted();
            SourceCodeAnalysis.CompletionInfo info = analysis.analyzeCompletion(remaining);
            SourceCodeAnalysis.Completeness completeness = info.completeness();
            if (completeness == SourceCodeAnalysis.Completeness.EMPTY) break;
            String source;
            if (completeness.isComplete() || completeness == SourceCodeAnalysis.Completeness.UNKNOWN) {
                source = info.source();
                remaining = info.remaining();
                if (source == null || source.isEmpty()) {
                    source = remaining;
                    remaining = "";
                }
            } else {
                // Unfinished input at the end of the cell: let the compiler say what is wrong.
                source = remaining;
                remaining = "";
            }
            List<SnippetEvent> events = shell.eval(source);
            if (stopCell == runningCell) return interrupted();
            SnippetEvent main = null;
            for (SnippetEvent event : events) {
                if (event.causeSnippet() != null) continue;
                if (main == null) main = event;
                if (event.exception() != null) {
                    reportException(shell, event.exception());
                    return "error";
                }
                if (event.status() == Snippet.Status.REJECTED) {
                    reportDiagnostics(shell, event.snippet(), source);
                    return "error";
                }
            }
            if (main == null) {
                error("CompilationError", "incomplete input", List.of(source.strip()));
                return "error";
            }
            lastValue = isExpression(main.snippet()) ? main.value() : null;
        }
        if (lastValue != null) frame('R', List.of(shorten(lastValue)));
        return "ok";
    }

    /** Far more than anyone reads, and it keeps a huge value from travelling (and sitting) in one frame. */
    private static final int MAX_VALUE_CHARS = 1 << 22;

    private static String shorten(String value) {
        if (value.length() <= MAX_VALUE_CHARS) return value;
        return value.substring(0, MAX_VALUE_CHARS) + "... (" + (value.length() - MAX_VALUE_CHARS) + " more characters)";
    }

    /** A trailing expression has a value to show (as Jupyter's execute_result); declarations do not. */
    private static boolean isExpression(Snippet snippet) {
        switch (snippet.subKind()) {
            case TEMP_VAR_EXPRESSION_SUBKIND:
            case VAR_VALUE_SUBKIND:
            case OTHER_EXPRESSION_SUBKIND:
                return true;
            default:
                return false;
        }
    }

    private static void reportException(JShell shell, JShellException exception) {
        String name;
        String value = exception.getMessage() == null ? "" : exception.getMessage();
        if (exception instanceof EvalException) {
            name = ((EvalException) exception).getExceptionClassName();
        } else if (exception instanceof UnresolvedReferenceException) {
            Snippet snippet = ((UnresolvedReferenceException) exception).getSnippet();
            name = UnresolvedReferenceException.class.getName();
            String missing = shell.unresolvedDependencies((jdk.jshell.DeclarationSnippet) snippet)
                    .collect(Collectors.joining(", "));
            value = "attempted to use " + snippet.source().strip().split("\n", 2)[0]
                    + " which cannot be used until " + missing + " is declared";
        } else {
            name = exception.getClass().getName();
        }
        List<String> traceback = new ArrayList<>();
        Throwable current = exception;
        String currentName = name;
        while (current != null) {
            String message = current.getMessage();
            String head = currentName + (message == null || message.isEmpty() ? "" : ": " + message);
            traceback.add(traceback.isEmpty() ? head : "Caused by: " + head);
            for (StackTraceElement element : current.getStackTrace()) traceback.add("\tat " + frameText(element));
            current = current.getCause();
            if (current instanceof EvalException) currentName = ((EvalException) current).getExceptionClassName();
            else if (current != null) currentName = current.getClass().getName();
        }
        error(name, value, traceback);
    }

    /** Snippet frames read as jshell prints them: "f (#3:2)" rather than "REPL.$JShell$13.f(#3:2)". */
    private static String frameText(StackTraceElement element) {
        String cls = element.getClassName();
        if (cls.startsWith("REPL.")) cls = "";
        String method = element.getMethodName();
        String where = cls.isEmpty() ? method : cls + "." + method;
        String location = element.getFileName() == null ? "Unknown Source"
                : element.getLineNumber() >= 0 ? element.getFileName() + ":" + element.getLineNumber() : element.getFileName();
        return (where.isEmpty() ? "" : where + " ") + "(" + location + ")";
    }

    private static void reportDiagnostics(JShell shell, Snippet snippet, String source) {
        List<Diag> diagnostics = shell.diagnostics(snippet).filter(Diag::isError).collect(Collectors.toList());
        if (diagnostics.isEmpty()) diagnostics = shell.diagnostics(snippet).collect(Collectors.toList());
        List<String> messages = new ArrayList<>();
        List<String> traceback = new ArrayList<>();
        String text = snippet.source() == null ? source : snippet.source();
        for (Diag diag : diagnostics) {
            // The snippet's wrapper class has no name worth showing: jshell drops that line too.
            String message = diag.getMessage(Locale.ROOT).replaceAll("(?m)\\n\\s*location: class\\s*$", "");
            messages.add(message);
            traceback.add("Error: " + message);
            int position = (int) Math.max(0, Math.min(diag.getPosition() < 0 ? diag.getStartPosition() : diag.getPosition(), text.length()));
            int lineStart = text.lastIndexOf('\n', position - 1) + 1;
            int lineEnd = text.indexOf('\n', position);
            if (lineEnd < 0) lineEnd = text.length();
            traceback.add(text.substring(lineStart, lineEnd));
            traceback.add(" ".repeat(Math.max(0, position - lineStart)) + "^");
        }
        if (messages.isEmpty()) messages.add("the snippet was rejected");
        error("CompilationError", String.join("\n", messages), traceback);
    }
}

import Foundation
import Testing
@testable import DemucsDaemon

/// Configuration text that the TOML library (toml++ inside TOMLKit) does not survive: it
/// asserts, and the process aborts, on a table header that does not hold a key (found by the
/// config fuzz target: the two bytes "[\n"). The daemon must say what is wrong and exit 78.
@Suite struct ConfigHostileTests {
    @Test(arguments: ["[\n", "[", "[]\n", "[[\n", "[ ]", "[jobs\n", "[\"jobs\"", "x = 1\n[\n", "  [\t\n", "[.]\n", "[a.]\n"])
    func aBrokenSectionHeaderIsAnErrorNamingTheLine(text: String) {
        let error = #expect(throws: ConfigError.self) { try DaemonConfig.parse(text) }
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("[") }.map { $0 + 1 }
        #expect(error?.line == line, "\(String(describing: error))")
        #expect(error?.description.contains("section header") == true, "\(String(describing: error))")
    }

    @Test func goodHeadersStillParse() throws {
        let config = try DaemonConfig.parse("""
            # [not a header] in a comment
            [jobs]  # a comment
            workers = 2
            [ "output" ]
            mp3 = false
            [database]
            url = "postgresql:///x?host=/run/[brackets]"
            """)
        #expect(config.jobs.workers == 2 && !config.output.mp3)
    }
}

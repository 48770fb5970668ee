import Foundation
import NN
import Testing
import Vision

/// What `--help` says about the networks holds for every registered architecture.
@Suite(.enabled(if: Tool.available, Tool.skipReason))
struct HelpTests {
    /// `finetune --help`'s "Stages:" paragraph names every family, and for every architecture its last
    /// stage and its highest-numbered `features.N` stage (VGG's are spelled "features.N"): a family added
    /// without its stages in the help fails here.
    @Test func finetuneHelpListsEveryFamilysStages() throws {
        let r = try Tool.run(["finetune", "--help"])
        #expect(r.status == 0, "\(r.description)")
        let text = r.stdout.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .joined(separator: " ")
        let start = try #require(text.range(of: "Stages:"), "no Stages: paragraph")
        let end = try #require(text.range(of: "A family prefix", range: start.upperBound..<text.endIndex))
        let stages = String(text[start.upperBound..<end.lowerBound])
        for arch in Architecture.all {
            #expect(stages.contains(arch.family), "\(arch.family) is not in the Stages paragraph: \(stages)")
            let net = arch.build(2)
            let last = try #require(net.stages.last).name
            #expect(stages.contains(last), "\(arch.name)'s last stage \(last)")
            let numbered = net.stages.compactMap { s -> Int? in
                s.name.hasPrefix("features.") ? Int(s.name.dropFirst("features.".count)) : nil
            }
            if let top = numbered.max(), !stages.contains("\(arch.family) each convolution features.N") {
                #expect(stages.contains("features.\(top)"), "\(arch.name)'s stage features.\(top)")
            }
        }
    }
}

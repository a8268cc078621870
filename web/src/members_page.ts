// Members and their roles. Every member may see the list; Admins add members, change roles
// (lowering one caps that member's user tokens at once) and remove members.
import { Privilege, type Member } from "./gen/apitokens/v1/resources_pb";
import { accounts, describe, failure } from "./api";
import { isAdmin, loadMembers, type Ctx } from "./context";
import { confirmAction } from "./dialog";
import { impact } from "./preview";
import { announce, field, h, replace, select } from "./dom";
import { PRIVILEGES, privilegeName, when } from "./format";

export class MembersPage {
  private readonly table = h("div", { id: "members" });

  constructor(private readonly ctx: Ctx) {}

  async mount(main: HTMLElement): Promise<void> {
    replace(main, h("h1", null, "Members"), isAdmin(this.ctx) ? this.addForm() : h("p", { class: "help" }, "Only Admins change members and roles."), this.table);
    await this.reload();
  }

  unmount(): void {}

  private async reload(): Promise<void> {
    try {
      await loadMembers(this.ctx);
    } catch (err) {
      announce(`Cannot list members: ${describe(failure(err))}`, "error");
      return;
    }
    const members = [...this.ctx.members.values()];
    replace(
      this.table,
      h(
        "table",
        { class: "table" },
        h("caption", { class: "sr-only" }, "Members of the account"),
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "User name"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, "Added"), isAdmin(this.ctx) ? h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")) : null)),
        h("tbody", null, members.map((m) => this.row(m))),
      ),
    );
  }

  private row(m: Member): HTMLElement {
    const admin = isAdmin(this.ctx);
    const you = m.userId === this.ctx.caller?.userId;
    return h(
      "tr",
      null,
      h("td", null, m.userName, you ? h("span", { class: "muted" }, " (you)") : null),
      h(
        "td",
        null,
        admin
          ? select(`Role of ${m.userName}`, `role-${m.userId}`, String(m.role), PRIVILEGES.map(([p, label]) => [String(p), label]), (v) => void this.setRole(m, Number(v) as Privilege), false, true)
          : privilegeName(m.role),
      ),
      h("td", null, when(m.createTime)),
      admin
        ? h("td", null, h("button", { type: "button", class: "danger", data: { key: `remove-${m.userId}` }, "aria-label": `Remove ${m.userName}`, on: { click: () => void this.remove(m) } }, "Remove"))
        : null,
    );
  }

  private addForm(): HTMLElement {
    const name = h("input", { type: "text", required: true, maxlength: 200, autocomplete: "off" });
    let role = Privilege.NORMAL;
    return h(
      "form",
      {
        class: "add-member",
        on: {
          submit: async (e) => {
            e.preventDefault();
            try {
              const res = await accounts.addMember({ userName: name.value.trim(), role });
              announce(`Added ${res.member?.userName ?? "the member"}.`);
              name.value = "";
              await this.reload();
            } catch (err) {
              announce(`Not added: ${describe(failure(err))}`, "error");
            }
          },
        },
      },
      field("User name", name),
      select("Role", "new-member-role", String(role), PRIVILEGES.map(([p, label]) => [String(p), label]), (v) => (role = Number(v) as Privilege)),
      h("button", { type: "submit" }, "Add member"),
    );
  }

  private async setRole(m: Member, role: Privilege): Promise<void> {
    try {
      // Lowering a role caps the member's user tokens at once: say which, and ask.
      const preview = (await accounts.updateMember({ userId: m.userId, role, validateOnly: true })).preview;
      if (preview && !preview.permitted) {
        announce(`Role not changed: ${preview.deniedMessage}`, "error");
      } else if (
        preview?.privilegeDrops.length === 0 ||
        (await confirmAction(`Make ${m.userName} ${privilegeName(role)}?`, [impact(preview)], "Change role"))
      ) {
        await accounts.updateMember({ userId: m.userId, role });
        announce(`${m.userName} is now ${privilegeName(role)}.`);
      }
    } catch (err) {
      announce(`Role not changed: ${describe(failure(err))}`, "error");
    }
    await this.reload();
  }

  private async remove(m: Member): Promise<void> {
    let preview;
    try {
      preview = (await accounts.removeMember({ userId: m.userId, validateOnly: true })).preview;
    } catch (err) {
      announce(`Cannot remove: ${describe(failure(err))}`, "error");
      return;
    }
    if (preview && !preview.permitted) {
      announce(`Cannot remove ${m.userName}: ${preview.deniedMessage}`, "error");
      return;
    }
    const ok = await confirmAction(
      `Remove ${m.userName}?`,
      [
        h("p", null, `Every user token of ${m.userName} stops working at once. Account tokens keep working, including ones they created.`),
        impact(preview),
        h("p", { class: "strong" }, "This cannot be undone: added again, they are a new member with new tokens."),
      ],
      "Remove member",
    );
    if (!ok) return;
    try {
      await accounts.removeMember({ userId: m.userId });
      announce(`Removed ${m.userName}.`);
    } catch (err) {
      announce(`Not removed: ${describe(failure(err))}`, "error");
    }
    await this.reload();
  }
}

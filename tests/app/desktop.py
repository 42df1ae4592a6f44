#!/usr/bin/python3
"""The desktop the tray app's end-to-end test needs, on the private session bus:

- org.kde.StatusNotifierWatcher: the registry a panel runs; tray icons register with it
  (without one, libayatana-appindicator shows no tray icon at all);
- org.freedesktop.Notifications: a notification server that records every notification
  as one JSON line in $DESKTOP_LOG and can "click" a notification's button
  (dev.mcpbroker.TestDesktop.InvokeAction emits the spec's ActionInvoked signal);
- dev.mcpbroker.TestDesktop.ShowMenu: renders a tray item's menu the way panels do, with
  libdbusmenu-gtk3 reading it over com.canonical.dbusmenu, so a screenshot shows it.

Prints "READY" on stdout once it owns both names. Run with the system python3 (python3-dbus,
python3-gi, gir1.2-dbusmenu-gtk3-0.4).
"""

import json
import os
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop

import gi

gi.require_version("Gtk", "3.0")
gi.require_version("DbusmenuGtk3", "0.4")
from gi.repository import DbusmenuGtk3, Gdk, GdkPixbuf, GLib, Gtk  # noqa: E402

WATCHER = "org.kde.StatusNotifierWatcher"
NOTIFICATIONS = "org.freedesktop.Notifications"
TEST = "dev.mcpbroker.TestDesktop"
LOG = os.environ.get("DESKTOP_LOG", "/dev/null")


def record(kind, **fields):
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"kind": kind, **fields}) + "\n")


class Watcher(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, "/StatusNotifierWatcher")
        self.items = []

    @dbus.service.method(WATCHER, in_signature="s", out_signature="", sender_keyword="sender")
    def RegisterStatusNotifierItem(self, service, sender=None):
        # Either a bus name or an object path (ayatana sends the path); the sender names the bus.
        item = f"{sender}{service}" if service.startswith("/") else service
        if item not in self.items:
            self.items.append(item)
        record("tray_registered", item=item)
        self.StatusNotifierItemRegistered(item)

    @dbus.service.method(WATCHER, in_signature="s", out_signature="")
    def RegisterStatusNotifierHost(self, service):
        pass

    @dbus.service.signal(WATCHER, signature="s")
    def StatusNotifierItemRegistered(self, item):
        pass

    @dbus.service.signal(WATCHER, signature="s")
    def StatusNotifierItemUnregistered(self, item):
        pass

    @dbus.service.signal(WATCHER, signature="")
    def StatusNotifierHostRegistered(self):
        pass

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="ss", out_signature="v")
    def Get(self, interface, prop):
        return self.GetAll(interface)[prop]

    @dbus.service.method(dbus.PROPERTIES_IFACE, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return {
            "RegisteredStatusNotifierItems": dbus.Array(self.items, signature="s"),
            "IsStatusNotifierHostRegistered": dbus.Boolean(True),
            "ProtocolVersion": dbus.Int32(0),
        }


class Notifications(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, "/org/freedesktop/Notifications")
        self.next_id = 1

    @dbus.service.method(NOTIFICATIONS, in_signature="", out_signature="as")
    def GetCapabilities(self):
        return ["body", "actions"]

    @dbus.service.method(NOTIFICATIONS, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("mcp-broker-test-desktop", "mcp-broker", "1", "1.2")

    @dbus.service.method(NOTIFICATIONS, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app_name, replaces_id, icon, summary, body, actions, hints, timeout):
        nid = int(replaces_id) or self.next_id
        self.next_id = max(self.next_id, nid) + 1
        pairs = list(actions)
        record("notification", id=nid, app=str(app_name), summary=str(summary), body=str(body),
               actions={str(pairs[i]): str(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)})
        return dbus.UInt32(nid)

    @dbus.service.method(NOTIFICATIONS, in_signature="u", out_signature="")
    def CloseNotification(self, nid):
        record("closed", id=int(nid))
        self.NotificationClosed(nid, 3)

    @dbus.service.signal(NOTIFICATIONS, signature="uu")
    def NotificationClosed(self, nid, reason):
        pass

    @dbus.service.signal(NOTIFICATIONS, signature="us")
    def ActionInvoked(self, nid, key):
        pass


class Test(dbus.service.Object):
    def __init__(self, bus, notes):
        super().__init__(bus, "/dev/mcpbroker/TestDesktop")
        self.notes = notes
        self.menu = None
        self.anchor = None

    @dbus.service.method(TEST, in_signature="us", out_signature="")
    def InvokeAction(self, nid, key):
        record("action", id=int(nid), key=str(key))
        self.notes.ActionInvoked(nid, key)
        self.notes.NotificationClosed(nid, 2)

    @dbus.service.method(TEST, in_signature="ssiis", out_signature="")
    def ShowMenu(self, bus_name, item_path, x, y, open_label):
        """Show a tray item as a panel does: its icon in a strip at (x, y) and its menu
        dropped down below it; open the submenu labelled `open_label` too, if given."""
        self.HideMenu()
        item = self.connection.get_object(bus_name, item_path)
        props = item.GetAll("org.kde.StatusNotifierItem", dbus_interface=dbus.PROPERTIES_IFACE)
        self.anchor = Gtk.Window(type=Gtk.WindowType.POPUP)
        self.anchor.move(x, y)
        self.anchor.set_default_size(240, 32)
        css = Gtk.CssProvider()
        css.load_from_data(b"window { background: #303030; }")
        self.anchor.get_style_context().add_provider(css, Gtk.STYLE_PROVIDER_PRIORITY_APPLICATION)
        name = str(props.get("IconName", ""))
        candidates = [name, f"{name}.png", os.path.join(str(props.get("IconThemePath", "")), f"{name}.png")]
        icon = next((c for c in candidates if os.path.isfile(c)), "")
        record("tray_icon", name=name, theme_path=str(props.get("IconThemePath", "")), file=icon)
        box = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL)
        if os.path.exists(icon):
            pix = GdkPixbuf.Pixbuf.new_from_file_at_scale(icon, 22, 22, True)
            img = Gtk.Image.new_from_pixbuf(pix)
            img.set_margin_start(10)
            img.set_margin_top(5)
            img.set_margin_bottom(5)
            box.pack_start(img, False, False, 0)
        self.anchor.add(box)
        self.anchor.show_all()
        self.menu = DbusmenuGtk3.Menu.new(bus_name, str(props["Menu"]))
        self.menu.attach_to_widget(self.anchor, None)

        def pop():
            items = self.menu.get_children()
            if not items:
                return True  # the layout has not arrived yet
            self.menu.popup_at_widget(self.anchor, Gdk.Gravity.SOUTH_WEST, Gdk.Gravity.NORTH_WEST, None)
            if open_label:
                for child in items:
                    if child.get_label() == open_label:
                        self.menu.select_item(child)
                        sub = child.get_submenu()
                        if sub is not None:
                            sub.popup_at_widget(child, Gdk.Gravity.NORTH_EAST, Gdk.Gravity.NORTH_WEST, None)
            return False

        GLib.timeout_add(100, pop)

    @dbus.service.method(TEST, in_signature="", out_signature="")
    def HideMenu(self):
        if self.menu is not None:
            for item in self.menu.get_children():
                sub = item.get_submenu()
                if sub is not None:
                    sub.popdown()
            self.menu.popdown()
            self.menu = None
        if self.anchor is not None:
            self.anchor.destroy()
            self.anchor = None


def main():
    DBusGMainLoop(set_as_default=True)
    Gtk.init(sys.argv)
    bus = dbus.SessionBus()
    names = [dbus.service.BusName(n, bus, do_not_queue=True) for n in (WATCHER, NOTIFICATIONS, TEST)]
    watcher = Watcher(bus)
    notes = Notifications(bus)
    test = Test(bus, notes)
    print("READY", flush=True)
    loop = GLib.MainLoop()
    try:
        loop.run()
    finally:
        del names, watcher, test


if __name__ == "__main__":
    main()
